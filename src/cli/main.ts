#!/usr/bin/env node
/**
 * The `norma` command line. Every command has --help; errors print their stable code, what went
 * wrong and what to do, and --json prints them as one JSON object for scripts.
 */
import { Command, CommanderError } from 'commander';
import { isNormaError } from '../errors.js';
import { ExitCode, exitCodeOf } from './exit-codes.js';
import { runCommand } from './run-command.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

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

export function buildProgram(): Command {
  const program = new Command('norma')
    .description('Run WebAssembly programs as Mach-style tasks that can be frozen and resumed')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('run')
    .description('run a WebAssembly module (a WASI command or a norma task) to completion on a local node')
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
    .option('--no-cache', 'transform the module again instead of using the module cache')
    .option('--json', 'print the exit report (or error) as JSON on stderr', false)
    .addHelpText(
      'after',
      "\nThe task's exit code becomes norma's. A trapped task exits with 134; norma's own errors use 64-73.\n" +
        'Example:\n  norma run tasks/build/counter-demo.wasm\n  norma run node_modules/wasi/example/cowsay.wasm -- hello',
    )
    .action(async (module: string, args: string[], options) => {
      try {
        process.exitCode = await runCommand(module, args, {
          preempt: options.preempt,
          entry: options.entry,
          env: options.env,
          also: options.also,
          json: options.json,
          cache: options.cache,
        });
      } catch (error) {
        process.exitCode = reportError(error, options.json);
      }
    });

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
