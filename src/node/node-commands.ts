/**
 * The command line of the node daemon: `norma node start | stop | status`, and `norma spawn | ps |
 * logs | freeze | thaw | kill | suspend` and `norma resume` (no argument), which talk to a running
 * node over its control socket (found from --store, or given with --socket).
 */

import { spawn } from 'node:child_process';
import { closeSync, existsSync, promises as fs, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import { parseEnv } from '../cli/run-command.js';
import { defaultStoreDirectory } from '../cli/task-session.js';
import { type ErrorCode, errorCodes, isNormaError, NormaError } from '../errors.js';
import { leaseTtlSecondsDefault } from '../limits.js';
import { checkNodeName, initCluster } from '../net/cluster-credentials.js';
import { makeDirectories } from '../snapshot/disk.js';
import type { ClusterOptions } from './cluster-member.js';
import { ControlClient, callNode, probeSocket } from './control-client.js';
import type { Method, ParamsIn, Results, TaskInfo, TaskRef } from './control-protocol.js';
import { daemonLog, NodeDaemon } from './daemon.js';
import { type NodePaths, nodePaths } from './node-files.js';

type Options = Record<string, unknown>;
type Action = <A extends unknown[]>(body: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;

/** How long `--detach` and `norma resume` wait for a new node to answer. */
const startTimeoutMs = 30_000;
/** Where a node looks for etcd when --etcd is not given (etcd's own default client URL). */
const etcdEndpointDefault = 'http://127.0.0.1:2379';

const print = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

function pathsOf(options: Options): NodePaths {
  return nodePaths((options.store as string | undefined) ?? defaultStoreDirectory(), {
    socket: options.socket as string | undefined,
    pidFile: options.pidFile as string | undefined,
    log: options.log as string | undefined,
  });
}

const json = (options: Options): boolean => Boolean(options.json);

/** The cluster member a command is for (`--node`), or undefined for the local node. */
const targetNode = (options: Options): string | undefined => options.node as string | undefined;

/** One call to the local node, for the node `--node` names (the local node forwards it). */
function callOn<M extends Method>(options: Options, method: M, params: ParamsIn<M>): Promise<Results[M]> {
  return callNode(pathsOf(options).socket, method, params, targetNode(options));
}

// ---------------------------------------------------------------------------------------------
// Starting and stopping the node
// ---------------------------------------------------------------------------------------------

/** What a new node found: the tasks a dead node left, the suspend point. */
function printStartReport(status: Results['status']): void {
  for (const task of status.recoverable) {
    if (task.status !== 'lost') continue;
    if (task.lastSnapshot === null)
      print(`lost: ${task.name} (task ${task.id}): no snapshot to recover from`);
    else
      print(
        `recoverable: ${task.name} (last snapshot ${task.lastSnapshot}): norma thaw ${task.lastSnapshot}`,
      );
  }
  if (status.suspended !== null) {
    print(
      `suspended: ${status.suspended.tasks} task(s) in snapshot ${status.suspended.snapshot}: norma resume`,
    );
  }
}

/** `--cluster DIR --name N [--listen H:P] [--etcd URL] [--lease-ttl S]`, or undefined for a node on its own. */
function clusterOptions(options: Options): ClusterOptions | undefined {
  const directory = options.cluster as string | undefined;
  const name = options.name as string | undefined;
  if (directory === undefined && name === undefined) return undefined;
  if (directory === undefined || name === undefined) {
    throw new NormaError('USAGE', 'a cluster node needs both --cluster <dir> and --name <name>');
  }
  checkNodeName(name);
  return {
    clusterDirectory: resolve(directory),
    name,
    listen: (options.listen as string | undefined) ?? '127.0.0.1:0',
    etcd: ((options.etcd as string | undefined) ?? etcdEndpointDefault).split(','),
    ...(options.leaseTtl === undefined ? {} : { leaseTtlSeconds: options.leaseTtl as number }),
  };
}

function clusterArgs(cluster: ClusterOptions | undefined): string[] {
  if (cluster === undefined) return [];
  return [
    '--cluster',
    cluster.clusterDirectory,
    '--name',
    cluster.name,
    '--listen',
    cluster.listen,
    '--etcd',
    cluster.etcd.join(','),
    ...(cluster.leaseTtlSeconds === undefined ? [] : ['--lease-ttl', String(cluster.leaseTtlSeconds)]),
  ];
}

export async function clusterInitCommand(directory: string, options: Options): Promise<number> {
  const info = await initCluster(resolve(directory), { name: options.label as string | undefined });
  if (json(options)) print(JSON.stringify(info));
  else {
    print(`cluster ${info.cluster} (${info.name}) in ${resolve(directory)}`);
    print(
      `start its nodes with: norma node start --cluster ${directory} --name n1 --etcd ${etcdEndpointDefault}`,
    );
  }
  return 0;
}

export async function nodesCommand(options: Options): Promise<number> {
  const result = await callOn(options, 'nodes', {});
  if (json(options)) {
    print(JSON.stringify(result));
    return 0;
  }
  printTable([
    ['NAME', 'ADDRESS', 'PID', 'TASKS', 'RUNNABLE', 'CPU', 'INCARNATION'],
    ...result.members.map((m) => [
      m.self ? `${m.name} *` : m.name,
      m.address,
      String(m.pid),
      String(m.load.tasks),
      String(m.load.runnable),
      `${Math.round(m.load.cpu * 100)}%`,
      m.incarnation,
    ]),
  ]);
  return 0;
}

export async function namesCommand(options: Options): Promise<number> {
  const result = await callOn(options, 'names', {});
  if (json(options)) {
    print(JSON.stringify(result));
    return 0;
  }
  if (result.names.length === 0) print('no names registered');
  else printTable([['NAME', 'NODE', 'PORT'], ...result.names.map((n) => [n.name, n.node, n.portId])]);
  return 0;
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) {
    print(
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    );
  }
}

export async function nodeStartCommand(options: Options): Promise<number> {
  const paths = pathsOf(options);
  if (options.detach) {
    const status = await startDetached(paths, clusterOptions(options));
    if (json(options)) print(JSON.stringify(status));
    else {
      print(`node started (pid ${status.pid})`);
      printStartReport(status);
    }
    return 0;
  }
  const daemon = await NodeDaemon.start(
    { store: paths.store, socket: paths.socket, pidFile: paths.pidFile, cluster: clusterOptions(options) },
    daemonLog,
  );
  const status = await daemon.status();
  if (json(options)) print(JSON.stringify(status));
  else printStartReport(status);
  await daemon.stopped;
  // Everything is closed; a stray handle must not keep a stopped node's process alive.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  return 0;
}

/**
 * Starts the node in the background: this same command without --detach, in its own session, its
 * output appended to the log file. Returns once its socket answers (or fails with its error).
 */
async function startDetached(
  paths: NodePaths,
  cluster: ClusterOptions | undefined,
): Promise<Results['status']> {
  await NodeDaemon.claimSocket(paths.socket);
  await makeDirectories(paths.store);
  await makeDirectories(dirname(paths.log));
  const logStart = await fs.stat(paths.log).then(
    (stat) => stat.size,
    () => 0,
  );
  const out = openSync(paths.log, 'a', 0o600);
  const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  const args = [
    'node',
    'start',
    '--store',
    paths.store,
    '--socket',
    paths.socket,
    '--pid-file',
    paths.pidFile,
    ...clusterArgs(cluster),
  ];
  // Node refuses profiling flags in NODE_OPTIONS (--cpu-prof, --perf-basic-prof): a detached
  // daemon takes them from NORMA_NODE_FLAGS instead (bench/remote-ipc.ts says how to profile).
  const flags = (process.env.NORMA_NODE_FLAGS ?? '').split(/\s+/).filter((flag) => flag !== '');
  const child = spawn(process.execPath, [...flags, cli, ...args], {
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  let exit: number | null = null;
  child.on('exit', (code, signal) => {
    exit = code ?? (signal === null ? 1 : 128);
  });
  child.on('error', () => {
    exit = 1;
  });
  child.unref();
  const deadline = Date.now() + startTimeoutMs;
  while (Date.now() < deadline) {
    if (exit !== null) throw await startFailure(paths.log, logStart, exit);
    try {
      const status = await callNode(paths.socket, 'status', {});
      if (status.pid === child.pid) return status;
    } catch (error) {
      if (!isNormaError(error, 'NODE_NOT_RUNNING')) throw error;
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new NormaError('NODE_NOT_RUNNING', `the node did not answer on ${paths.socket} within 30 s`, {
    hint: `See its log: ${paths.log}`,
  });
}

/** The error a node that exited at start reported in its log (as the CLI prints it). */
async function startFailure(log: string, from: number, code: number): Promise<Error> {
  const text = (await fs.readFile(log, 'utf8').catch(() => '')).slice(from);
  const reported = /^norma: ([A-Z_]+): (.*)$/m.exec(text);
  if (reported !== null && Object.hasOwn(errorCodes, reported[1]!)) {
    return new NormaError(reported[1] as ErrorCode, reported[2]!);
  }
  return new Error(`the node exited with code ${code} at start; its log (${log}) says:\n${text.trim()}`);
}

export async function nodeStopCommand(options: Options): Promise<number> {
  const result = await callOn(options, 'stop', {});
  if (json(options)) print(JSON.stringify(result));
  else print(`node stopped (${result.killed} task(s) killed)`);
  return 0;
}

export async function nodeStatusCommand(options: Options): Promise<number> {
  const status = await callOn(options, 'status', {});
  if (json(options)) print(JSON.stringify(status));
  else {
    const up = ((Date.now() - status.startedAtMs) / 1000).toFixed(0);
    print(`node ${status.nodeId} (pid ${status.pid}), up ${up} s`);
    print(`socket ${status.socket}`);
    print(`store ${status.store}`);
    printStartReport(status);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

export async function spawnCommand(module: string, args: string[], options: Options): Promise<number> {
  const path = resolve(module);
  if (!existsSync(path)) throw new NormaError('FILE_NOT_FOUND', `cannot read ${module}: ENOENT`);
  const result = await callOn(options, 'spawn', {
    module: path,
    args,
    env: parseEnv(options.env as string[]),
    preempt: Boolean(options.preempt),
    keep: options.keep as number,
    ...(options.name === undefined ? {} : { name: options.name as string }),
    ...(options.checkpointEvery === undefined
      ? {}
      : { checkpointEveryMs: options.checkpointEvery as number }),
  });
  print(json(options) ? JSON.stringify(result) : String(result.id));
  return 0;
}

function statusText(task: TaskInfo): string {
  if (task.status === 'exited' && task.exit !== null) {
    return task.exit.trap === null ? `exited(${task.exit.code})` : `trapped(${task.exit.trap})`;
  }
  return task.status;
}

function memoryText(bytes: number): string {
  return bytes === 0 ? '-' : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export async function psCommand(options: Options): Promise<number> {
  const { tasks } = await callOn(options, 'ps', {});
  if (json(options)) {
    print(JSON.stringify({ tasks }));
    return 0;
  }
  if (tasks.length === 0) {
    print('no tasks');
    return 0;
  }
  const rows = [
    ['ID', 'NAME', 'STATUS', 'THREADS', 'MEMORY', 'LAST SNAPSHOT', 'CHECKPOINTS'],
    ...tasks.map((task) => [
      String(task.id),
      task.name,
      statusText(task),
      task.status === 'running' ? String(task.threads) : '-',
      memoryText(task.memoryBytes),
      task.lastSnapshot ?? '-',
      task.checkpoint === null
        ? '-'
        : `every ${task.checkpoint.everyMs} ms, ${task.checkpoint.kept.length}/${task.checkpoint.keep} kept`,
    ]),
  ];
  printTable(rows);
  return 0;
}

export async function logsCommand(task: string, options: Options): Promise<number> {
  const client = await ControlClient.connect(pathsOf(options).socket, targetNode(options));
  try {
    const result = await client.stream('logs', { task, follow: Boolean(options.follow) }, (event) => {
      if (json(options)) print(JSON.stringify(event));
      else
        (event.stream === 'stderr' ? process.stderr : process.stdout).write(
          Buffer.from(event.data, 'base64'),
        );
    });
    if (json(options)) print(JSON.stringify(result));
  } finally {
    client.close();
  }
  return 0;
}

export async function freezeCommand(task: string, options: Options): Promise<number> {
  const result = await callOn(options, 'freeze', { task });
  print(json(options) ? JSON.stringify(result) : `frozen ${result.snapshot}`);
  return 0;
}

function printTasks(tasks: readonly TaskRef[], suffix = ''): void {
  for (const task of tasks) print(`${task.id} ${task.name}${suffix}`);
}

export async function thawCommand(snapshot: string, options: Options): Promise<number> {
  const result = await callOn(options, 'thaw', { snapshot });
  if (json(options)) print(JSON.stringify(result));
  else printTasks(result.tasks);
  return 0;
}

export async function moveCommand(task: string, options: Options & { to: string }): Promise<number> {
  const result = await callOn(options, 'move', { task, to: options.to });
  if (json(options)) print(JSON.stringify(result));
  else {
    const { transfer } = result;
    printTasks(result.tasks, ` on ${result.to}`);
    print(
      `moved from ${result.from} in ${result.totalMs.toFixed(0)} ms, stopped ${result.downtimeMs.toFixed(0)} ms: ${result.precopiedPages} page(s) sent ahead, ${result.pagesChanged} of ${result.pagesScanned} changed at the stop, ${transfer.pagesSent} sent then, ${transfer.pagesSkipped} already there`,
    );
  }
  return 0;
}

export async function killCommand(task: string, options: Options): Promise<number> {
  const result = await callOn(options, 'kill', { task });
  if (json(options)) print(JSON.stringify(result));
  else print(`${result.action} ${result.task.id} ${result.task.name}`);
  return 0;
}

export async function suspendCommand(options: Options): Promise<number> {
  const result = await callOn(options, 'suspend', {});
  if (json(options)) print(JSON.stringify(result));
  else print(result.snapshot === null ? 'suspended (no tasks)' : `suspended ${result.snapshot}`);
  return 0;
}

/** `norma resume` with no argument: starts the node if needed and thaws its suspend point. */
export async function resumeNodeCommand(options: Options): Promise<number> {
  const paths = pathsOf(options);
  let started: Results['status'] | null = null;
  if ((await probeSocket(paths.socket)) !== 'alive') {
    if (!existsSync(paths.suspendRecord)) {
      throw new NormaError('NODE_NOT_SUSPENDED', `no suspend point in ${paths.store}`);
    }
    started = await startDetached(paths, undefined);
    if (!json(options)) print(`node started (pid ${started.pid})`);
  }
  const result = await callNode(paths.socket, 'resumeSuspended', {});
  if (json(options)) print(JSON.stringify({ ...result, started: started?.pid ?? null }));
  else {
    printTasks(result.tasks);
    printTasks(result.frozen, ' (frozen, as before the suspend)');
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function wholeNumber(minimum: number) {
  return (value: string): number => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < minimum)
      throw new InvalidArgumentError(`expected a whole number ≥ ${minimum}`);
    return number;
  };
}

/** --store, --socket, --json: how every node command finds the node. */
export function withNodeOptions(command: Command): Command {
  return command
    .option('--store <dir>', "the node's store (default: $NORMA_STORE, else snapshots/ of norma)")
    .option('--socket <path>', "the node's control socket (default: <store>/node.sock)")
    .option('--json', 'machine-readable output (errors too, on stderr)', false)
    .option('--node <name>', 'the cluster member to act on (the local node forwards the command)');
}

export function addNodeCommands(program: Command, action: Action): void {
  const node = program.command('node').description('start, stop and inspect the local node daemon');
  withNodeOptions(node.command('start').description('start the node (in the foreground unless --detach)'))
    .option('--detach', 'run in the background; print `node started (pid N)` once it answers', false)
    .option('--log <file>', "with --detach: the node's own messages (default: <store>/node.log)")
    .option('--pid-file <file>', "the node's pid while it runs (default: <store>/node.pid)")
    .option('--cluster <dir>', 'join the cluster `norma cluster init` made in <dir> (with --name)')
    .option('--name <name>', "this node's name in the cluster (n1, n2, ...)")
    .option('--listen <host:port>', 'where other nodes reach this one (default: 127.0.0.1:0)')
    .option('--etcd <urls>', `the cluster's etcd, comma-separated (default: ${etcdEndpointDefault})`)
    .option(
      '--lease-ttl <seconds>',
      `a node that dies leaves the cluster this long after (default: ${leaseTtlSecondsDefault})`,
      wholeNumber(1),
    )
    .addHelpText(
      'after',
      [
        '',
        'The node listens on a Unix socket only its owner can use (mode 0600). In the foreground it logs',
        'on stderr and SIGINT/SIGTERM stop it (its tasks are killed). Tasks a previous node left running',
        'when it died are listed as `recoverable: <name> (last snapshot <id>): norma thaw <id>`.',
        'Examples:',
        '  norma node start --detach',
        '  norma node start --store /tmp/store --socket /tmp/norma.sock',
        '  norma node start --store /tmp/n1 --cluster cluster --name n1 --etcd http://127.0.0.1:2379',
      ].join('\n'),
    )
    .action(action(async (options: Options) => nodeStartCommand(options)));
  const cluster = program.command('cluster').description('make a cluster: its CA and identity');
  cluster
    .command('init')
    .description('create a cluster in <dir>: its id, CA key and certificate (node certificates follow)')
    .argument('<dir>', 'the cluster directory (created with mode 0700)')
    .option('--label <label>', 'a name for people')
    .option('--json', 'machine-readable output', false)
    .action(action(async (directory: string, options: Options) => clusterInitCommand(directory, options)));
  withNodeOptions(program.command('nodes').description("the cluster's members and their load")).action(
    action(async (options: Options) => nodesCommand(options)),
  );
  withNodeOptions(
    program.command('names').description("the cluster's name service: name, node, port"),
  ).action(action(async (options: Options) => namesCommand(options)));
  withNodeOptions(node.command('stop').description('kill every task of the node and stop it')).action(
    action(async (options: Options) => nodeStopCommand(options)),
  );
  withNodeOptions(
    node.command('status').description("the node's pid, id, socket, store, and what it recovered"),
  ).action(action(async (options: Options) => nodeStatusCommand(options)));

  withNodeOptions(
    program
      .command('spawn')
      .description('start a task on the node; prints its id')
      .argument('<module>', 'path of the .wasm module (read by the node)')
      .argument('[args...]', 'arguments for the task (put them after --)')
      .option('--name <name>', 'the task name (default: the module file name)')
      .option('--preempt', 'insert safepoints so pure computation is time-sliced (and freezable)', false)
      .option('--env <NAME=VALUE>', 'an environment variable of the task (repeatable)', collect, [])
      .option(
        '--checkpoint-every <ms>',
        'checkpoint the task periodically, without stopping it',
        wholeNumber(10),
      )
      .option('--keep <n>', 'with --checkpoint-every: how many checkpoints to keep', wholeNumber(1), 3),
  )
    .addHelpText(
      'after',
      [
        '',
        "The task's stdin is empty; its stdout and stderr go to <store>/logs/<name>-<id>.log (`norma logs`).",
        'Examples:',
        '  norma spawn tasks/build/counter-server.wasm',
        '  norma spawn --checkpoint-every 1000 --keep 5 tasks/build/counter-client.wasm -- 100 keep',
      ].join('\n'),
    )
    .action(
      action(async (module: string, args: string[], options: Options) => spawnCommand(module, args, options)),
    );

  withNodeOptions(
    program.command('ps').description("the node's tasks: status, threads, memory, last snapshot"),
  )
    .addHelpText(
      'after',
      '\nStatus: running, frozen, exited(code), trapped(kind), killed, lost (its node died: `norma thaw` its\nlast snapshot), suspended (`norma resume`).',
    )
    .action(action(async (options: Options) => psCommand(options)));

  withNodeOptions(
    program
      .command('logs')
      .description("a task's stdout and stderr")
      .argument('<task>', 'task id or name')
      .option('-f, --follow', 'go on printing what it prints, until it ends', false),
  ).action(action(async (task: string, options: Options) => logsCommand(task, options)));

  withNodeOptions(
    program
      .command('freeze')
      .description('freeze a running task into a snapshot; its ports keep queueing messages')
      .argument('<task>', 'task id or name'),
  )
    .addHelpText('after', '\nPrints `frozen <snapshot-id>`; `norma thaw <snapshot-id>` continues it.')
    .action(action(async (task: string, options: Options) => freezeCommand(task, options)));

  withNodeOptions(
    program
      .command('thaw')
      .description('restore a snapshot of the store into the node; prints `<id> <name>` per task')
      .argument('<snapshot>', 'snapshot id or unique prefix'),
  )
    .addHelpText(
      'after',
      '\nIn a cluster, a snapshot another member took is pulled from it (only the pages this node lacks),\nand if its task is frozen there, its ports move here with it.',
    )
    .action(action(async (snapshot: string, options: Options) => thawCommand(snapshot, options)));

  withNodeOptions(
    program
      .command('move')
      .description('move a running task to another member of the cluster, with its ports')
      .argument('<task>', 'task id or name')
      .requiredOption('--to <node>', 'the member to move it to (`norma nodes`)'),
  )
    .addHelpText(
      'after',
      '\nPrints `<id> <name> on <node>` and what travelled. Senders on every node reach the task at\nits new place; nothing on the old node is needed afterwards. Tasks that map memory objects stay.',
    )
    .action(action(async (task: string, options: Options & { to: string }) => moveCommand(task, options)));

  withNodeOptions(
    program
      .command('kill')
      .description('kill a running task, drop a frozen one, or forget an ended or lost one')
      .argument('<task>', 'task id or name'),
  ).action(action(async (task: string, options: Options) => killCommand(task, options)));

  withNodeOptions(
    program
      .command('suspend')
      .description('freeze every task of the node as one group snapshot and stop the node'),
  )
    .addHelpText(
      'after',
      '\nPrints `suspended <snapshot-id>`; `norma resume` (no argument) starts the node again with them.',
    )
    .action(action(async (options: Options) => suspendCommand(options)));
}
