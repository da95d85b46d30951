/**
 * A task's clocks. A task sees time only through its kernel, so that a restored task's monotonic
 * clock continues from where it was frozen (time does not jump by the hours it spent on disk, and
 * never goes backwards), while its realtime clock stays the wall clock, as after a laptop resume.
 */

/** The host's clocks, injected so tests and simulations can drive time. */
export interface HostClock {
  monotonicNs(): bigint;
  realtimeNs(): bigint;
}

export const systemClock: HostClock = {
  monotonicNs: () => process.hrtime.bigint(),
  realtimeNs: () => BigInt(Date.now()) * 1_000_000n,
};

/** Plain data: the task's monotonic time at the moment the kernel adopted it. */
export interface VirtualClockState {
  monotonicAtAdoptNs: bigint;
}

export class VirtualClock {
  readonly #hostAtAdoptNs: bigint;

  constructor(
    readonly state: VirtualClockState,
    private readonly host: HostClock,
  ) {
    this.#hostAtAdoptNs = host.monotonicNs();
  }

  monotonicNs(): bigint {
    return this.state.monotonicAtAdoptNs + (this.host.monotonicNs() - this.#hostAtAdoptNs);
  }

  realtimeNs(): bigint {
    return this.host.realtimeNs();
  }

  /** Host monotonic time at which the task's clock reads `taskNs` (for arming host timers). */
  hostTimeOf(taskNs: bigint): bigint {
    return taskNs - this.state.monotonicAtAdoptNs + this.#hostAtAdoptNs;
  }

  /** The state to save: the current reading becomes the adoption point of the next kernel. */
  capture(): VirtualClockState {
    return { monotonicAtAdoptNs: this.monotonicNs() };
  }
}
