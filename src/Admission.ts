// Admission: the global and per-user caps on concurrent subscribers (docs/operations.md, "Limits"). The only
// writer of the counts. A handshake holds its slots as scoped reservations, so a refusal, a failure or a client
// that goes away gives them back; `attach` hands them over to the subscriber, whose end releases them.
import { Context, Effect, Layer, type Scope } from "effect"

export interface AdmissionLimits {
  readonly globalConcurrent: number
  readonly perUserConcurrent: number
}

/** A slot held during a handshake. Releasing twice, or after the hand-over, does nothing. */
export interface Reservation {
  /** Ownership passes to a subscriber: the scope no longer releases it. */
  readonly handOver: () => void
}

export class AdmissionState {
  private readonly limits: AdmissionLimits
  private global = 0
  private readonly perUser = new Map<string, number>()

  constructor(limits: AdmissionLimits) {
    this.limits = limits
  }

  /** Subscribers attached plus handshakes holding a slot. */
  get inUse(): number {
    return this.global
  }

  usersInUse(userId: string): number {
    return this.perUser.get(userId) ?? 0
  }

  tryGlobal(): boolean {
    if (this.global >= this.limits.globalConcurrent) return false
    this.global++
    return true
  }

  releaseGlobal(): void {
    if (this.global > 0) this.global--
  }

  tryUser(userId: string): boolean {
    const n = this.perUser.get(userId) ?? 0
    if (n >= this.limits.perUserConcurrent) return false
    this.perUser.set(userId, n + 1)
    return true
  }

  releaseUser(userId: string): void {
    const left = (this.perUser.get(userId) ?? 1) - 1
    if (left <= 0) this.perUser.delete(userId)
    else this.perUser.set(userId, left)
  }
}

interface Held extends Reservation {
  readonly release: () => void
}

/** Takes a slot and registers its release in one uninterruptible step, so no interruption can leak it. */
const reserve = (take: () => boolean, give: () => void): Effect.Effect<Reservation | undefined, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync((): Held | undefined => {
      if (!take()) return undefined
      let owned = true
      return {
        handOver: () => {
          owned = false
        },
        release: () => {
          if (owned) {
            owned = false
            give()
          }
        },
      }
    }),
    (held) => Effect.sync(() => held?.release()),
  )

export class Admission extends Context.Service<
  Admission,
  {
    /** A global slot for this handshake, or undefined at the cap. */
    readonly reserveGlobal: Effect.Effect<Reservation | undefined, never, Scope.Scope>
    /** One of the user's slots for this handshake, or undefined at the per-user cap. */
    readonly reserveUser: (userId: string) => Effect.Effect<Reservation | undefined, never, Scope.Scope>
    /** A subscriber that held both slots ended. */
    readonly leave: (userId: string) => void
    readonly inUse: () => number
  }
>()("walera/Admission") {
  static readonly make = (limits: AdmissionLimits) => {
    const state = new AdmissionState(limits)
    return Admission.of({
      reserveGlobal: reserve(
        () => state.tryGlobal(),
        () => state.releaseGlobal(),
      ),
      reserveUser: (userId) =>
        reserve(
          () => state.tryUser(userId),
          () => state.releaseUser(userId),
        ),
      leave: (userId) => {
        state.releaseUser(userId)
        state.releaseGlobal()
      },
      inUse: () => state.inUse,
    })
  }

  static readonly layer = (limits: AdmissionLimits) => Layer.sync(Admission, () => Admission.make(limits))
}
