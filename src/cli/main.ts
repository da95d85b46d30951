#!/usr/bin/env node
/**
 * The `norma` command line. Every command has --help; errors print their stable code, what went
 * wrong and what to do, and --json prints them as one JSON object for scripts.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { isNormaError } from '../errors.js';
import { addNodeCommands, resumeNodeCommand } from '../node/node-commands.js';
import { ExitCode, exitCodeOf } from './exit-codes.js';
import { resumeCommand } from './resume-command.js';
import { runCommand } from './run-command.js';
import {
  exportCommand,
  gcCommand,
  importCommand,
  inspectCommand,
  listCommand,
  removeCommand,
  verifyCommand,
} from './snapshot-commands.js';
import { defaultStoreDirectory, type SessionOptions } from './task-session.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function positiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0) throw new InvalidArgumentError('expected a whole number');
  return number;
}

function reportError(error: unknown, json: boolean): number {
  if (isNormaError(error)) {
    if (json) process.stderr.write(`${JSON.stringify({ error: error.toJSON() })}\n`);
    else process.stderr.write(`norma: ${error.code}: ${error.message}\n  hint: ${error.hint}\n`);
    return exitCodeOf(error.code);
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  if (json) process.stderr.write(`${JSON.stringify({ error: { code: 'INTERNAL', message } })}\n`);
  else
    process.stderr.write(
      `norma: internal error: ${message}\n  hint: this is a bug in norma; please report it\n`,
    );
  return ExitCode.SOFTWARE;
}

/** Runs a command body, turning its result into the exit code and its errors into reports. */
function action<A extends unknown[]>(body: (...args: A) => Promise<number>) {
  return async (...args: A): Promise<void> => {
    const command = args[args.length - 1] as Command;
    const json = Boolean(command.opts().json);
    try {
      process.exitCode = await body(...args);
    } catch (error) {
      process.exitCode = reportError(error, json);
    }
  };
}

/** The options of commands that run tasks and may freeze them. */
function withSessionOptions(command: Command): Command {
  return command
    .option('--stop-after <ms>', 'freeze everything after this many milliseconds', positiveInteger)
    .option(
      '--checkpoint-every <ms>',
      'checkpoint the tasks periodically, without stopping them',
      positiveInteger,
    )
    .option('--keep <n>', 'with --checkpoint-every: how many checkpoints to keep', positiveInteger, 3)
    .option('--store <dir>', 'the snapshot store (default: $NORMA_STORE, else snapshots/ of norma)')
    .option('--stats', 'print freeze statistics (frozen time, pages, bytes, durations) on stderr', false)
    .option('--json', 'print reports (exit, freeze, errors) as JSON lines on stderr', false);
}

function sessionOptions(options: Record<string, unknown>, parent: string | null): SessionOptions {
  return {
    store: (options.store as string | undefined) ?? defaultStoreDirectory(),
    ...(options.stopAfter === undefined ? {} : { stopAfterMs: options.stopAfter as number }),
    ...(options.checkpointEvery === undefined
      ? {}
      : { checkpointEveryMs: options.checkpointEvery as number }),
    keep: options.keep as number,
    stats: Boolean(options.stats),
    json: Boolean(options.json),
    parent,
  };
}

export function buildProgram(): Command {
  const program = new Command('norma')
    .description('Run WebAssembly programs as Mach-style tasks that can be frozen and resumed')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  withSessionOptions(
    program
      .command('run')
      .description('run a WebAssembly module (a WASI command or a norma task) on a local node')
      .argument('<module>', 'path of the .wasm module')
      .argument('[args...]', 'arguments for the task (put them after --)')
      .option('--preempt', 'insert safepoints so pure computation is time-sliced (and freezable)', false)
      .option('--entry <export>', 'the exported function to run instead of _start')
      .option('--env <NAME=VALUE>', 'set an environment variable of the task (repeatable)', collect, [])
      .option(
        '--also <module>',
        'start another task on the same node first, e.g. a server (repeatable)',
        collect,
        [],
      )
      .option('--no-cache', 'transform the module again instead of using the module cache'),
  )
    .addHelpText(
      'after',
      [
        '',
        "The task's exit code becomes norma's. A trapped task exits with 134, a killed one with 137.",
        'SIGINT/SIGTERM or --stop-after freeze all tasks: norma prints `frozen <snapshot-id>` as the',
        'last line on stderr and exits with 75; `norma resume <snapshot-id>` continues them. A second',
        "signal kills them instead. norma's own errors exit with 64-73.",
        'Examples:',
        '  norma run tasks/build/counter-demo.wasm',
        '  norma run node_modules/wasi/example/cowsay.wasm -- hello',
        '  norma run --preempt --stop-after 500 tasks/build/cpu-job.wasm',
      ].join('\n'),
    )
    .action(
      action(async (module: string, args: string[], options: Record<string, unknown>) =>
        runCommand(module, args, {
          ...sessionOptions(options, null),
          preempt: Boolean(options.preempt),
          ...(options.entry === undefined ? {} : { entry: options.entry as string }),
          env: options.env as string[],
          also: options.also as string[],
          cache: Boolean(options.cache),
        }),
      ),
    );

  withSessionOptions(
    program
      .command('resume')
      .description(
        'resume frozen tasks in this process, where they stopped; with no argument, start the node daemon again with the tasks `norma suspend` froze',
      )
      .argument('[snapshot]', 'a snapshot id (or unique prefix) in the store, or an exported snapshot file')
      .option('--socket <path>', "with no snapshot: the node's control socket (default: <store>/node.sock)")
      .option(
        '--module <file>',
        'the original module of a task (checked against the snapshot; needed if the store lacks it)',
        collect,
        [],
      ),
  )
    .addHelpText(
      'after',
      '\nExit codes as for `norma run`. Examples:\n  norma resume 3fa9c1\n  norma resume          # after `norma suspend`: the node and all its tasks',
    )
    .action(
      action(async (snapshot: string | undefined, options: Record<string, unknown>) =>
        snapshot === undefined
          ? resumeNodeCommand(options)
          : resumeCommand(snapshot, {
              ...sessionOptions(options, null),
              modules: options.module as string[],
            }),
      ),
    );

  addNodeCommands(program, action);

  const snapshot = program
    .command('snapshot')
    .description('list, inspect, verify, remove and move snapshots');
  const storeCommand = (name: string, description: string): Command =>
    snapshot
      .command(name)
      .description(description)
      .option('--store <dir>', 'the snapshot store (default: $NORMA_STORE, else snapshots/ of norma)')
      .option('--json', 'machine-readable output', false);
  const storeOf = (options: Record<string, unknown>) => ({
    store: (options.store as string | undefined) ?? defaultStoreDirectory(),
    json: Boolean(options.json),
  });
  storeCommand('ls', 'list the snapshots, newest first').action(
    action(async (options: Record<string, unknown>) => listCommand(storeOf(options))),
  );
  storeCommand('inspect', 'print a snapshot (its manifest) as JSON')
    .argument('<snapshot>', 'id or unique prefix')
    .action(
      action(async (id: string, options: Record<string, unknown>) => inspectCommand(id, storeOf(options))),
    );
  storeCommand('verify', 'read every page and module of a snapshot and check its hash (exit 1 on damage)')
    .argument('<snapshot>', 'id or unique prefix')
    .action(
      action(async (id: string, options: Record<string, unknown>) => verifyCommand(id, storeOf(options))),
    );
  storeCommand('rm', 'remove snapshots (their pages are reclaimed by gc)')
    .argument('<snapshots...>', 'ids or unique prefixes')
    .action(
      action(async (ids: string[], options: Record<string, unknown>) => removeCommand(ids, storeOf(options))),
    );
  storeCommand('gc', 'reclaim pages and modules no snapshot refers to').action(
    action(async (options: Record<string, unknown>) => gcCommand(storeOf(options))),
  );
  storeCommand('export', 'write a snapshot with everything it needs into one portable file')
    .argument('<snapshot>', 'id or unique prefix')
    .argument('<file>', 'the file to write')
    .action(
      action(async (id: string, file: string, options: Record<string, unknown>) =>
        exportCommand(id, file, storeOf(options)),
      ),
    );
  storeCommand('import', 'add a snapshot from a portable file to the store')
    .argument('<file>', 'a file written by `norma snapshot export`')
    .action(
      action(async (file: string, options: Record<string, unknown>) => importCommand(file, storeOf(options))),
    );
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
      return;
    }
    process.exitCode = reportError(error, false);
  }
}

await main();
