#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import NIOCore
import UDPKit

/// An echo server (or, with a `ReplyTemplate`, the seeds' greeting server) that is safe to leave running.
///
/// Abuse protection, on by default:
/// - no reply to source port 0, nor to the classic UDP loop partners (echo 7, daytime 13, qotd 17,
///   chargen 19, time 37): two such services answering each other loop forever;
/// - a reply is never larger than its request (no amplification) unless a template makes it so, and then
///   each source address gets at most `repliesPerSecond` such replies (token bucket with `burst`);
/// - `access` allow/deny lists.
/// Every datagram not answered is counted by reason in `EchoServer.Counters`.
public final class EchoServer: Sendable {
    /// Why a datagram got no reply.
    public enum DropReason: String, Sendable, CaseIterable {
        /// The source port was 0 (not a real sender; a reply cannot be addressed).
        case sourcePortZero = "source-port-0"
        /// The source port is a UDP service that answers everything (7, 13, 17, 19, 37 by default).
        case loopPort = "loop-port"
        /// The sender is outside `--allow` or inside `--deny`.
        case accessDenied = "access-denied"
        /// The sender exceeded its reply rate.
        case rateLimited = "rate-limited"
        /// The reply would have been larger than the request and amplification is not allowed.
        case amplification = "amplification"
        /// No `--rule` matched and there is no fallback `--reply`.
        case noRule = "no-rule"
        /// `--exec`: as many commands as allowed were already running.
        case execBusy = "exec-limit"
        /// `--exec`: the command could not start, or exited with a failure status.
        case execFailed = "exec-failed"
        /// `--exec`: the command was killed for running too long.
        case execTimeout = "exec-timeout"
        /// `--exec`: the command printed nothing.
        case execEmpty = "exec-empty"
        /// `--exec`: the command printed more than one datagram can carry (refused, not cut).
        case execOversize = "exec-oversize"
    }

    /// Settings.
    public struct Configuration: Sendable {
        /// The reply template; nil echoes the request unchanged.
        public var template: ReplyTemplate?
        /// Source ports never answered. Default: 0, 7, 13, 17, 19, 37.
        public var blockedSourcePorts: Set<Int> = [0, 7, 13, 17, 19, 37]
        /// Allow/deny lists.
        public var access = AccessControl()
        /// Replies per second per source address for replies larger than their request. Default 20.
        public var repliesPerSecond: Double = 20
        /// How many such replies a source may get at once before the rate applies. Default 40.
        public var burst: Double = 40
        /// When false (the default), a reply larger than its request is only sent by a template, under the rate
        /// limit; when true, neither check applies.
        public var allowAmplification = false
        /// Reply rules, tried before `template` (which then answers what no rule matches).
        public var rules: ReplyRules?
        /// A checksum appended to every reply.
        public var append: Checksum?
        /// Answer each datagram with a command's output instead (rules and template then do not apply).
        public var exec: ExecSettings?

        /// The defaults: echo, all protections on.
        public init() {}
    }

    /// What the server did, readable while it runs.
    public struct Counters: Sendable, Equatable {
        /// Datagrams received.
        public var received = 0
        /// Bytes received.
        public var receivedBytes = 0
        /// Replies sent.
        public var replied = 0
        /// Bytes sent.
        public var repliedBytes = 0
        /// Datagrams not answered, by reason.
        public var dropped: [DropReason: Int] = [:]
        /// Distinct senders (counted up to 100,000).
        public var senders = 0

        /// All datagrams not answered.
        public var droppedTotal: Int { dropped.values.reduce(0, +) }
    }

    /// One handled datagram, for logging.
    public struct Event: Sendable {
        /// The request.
        public var datagram: Datagram
        /// The reply sent, or nil.
        public var reply: [UInt8]?
        /// Why there was no reply, or nil.
        public var dropped: DropReason?
    }

    /// The socket the server answers on.
    public let socket: UDPSocket
    /// The settings.
    public let configuration: Configuration
    private let state: NIOLockedValueBox<(counters: Counters, engine: Engine)>
    private let runner: CommandRunner?

    /// A server answering on `socket`.
    public init(socket: UDPSocket, configuration: Configuration = .init()) {
        self.socket = socket
        self.configuration = configuration
        let limiter = RateLimiter(rate: configuration.repliesPerSecond, burst: configuration.burst)
        self.state = NIOLockedValueBox((Counters(), Engine(limiter: limiter)))
        self.runner = configuration.exec.map { CommandRunner(settings: $0, localPort: socket.localAddress.port ?? 0) }
    }

    /// The counters so far.
    public var counters: Counters { state.withLockedValue { $0.counters } }

    /// Answers datagrams until the socket closes or the task is cancelled. `onEvent`, when given, sees every
    /// datagram with its reply or drop reason (after the batch's replies were sent).
    public func run(onEvent: (@Sendable (Event) -> Void)? = nil) async throws {
        do {
            // `respond` hands over one batch at a time; the lock only orders this against readers of `counters`.
            try await socket.respond { [self] batch in
                var outgoing: [OutgoingDatagram] = []
                outgoing.reserveCapacity(batch.count)
                var events: [Event] = []
                state.withLockedValue { state in
                    for datagram in batch {
                        state.engine.count += 1
                        state.counters.received += 1
                        state.counters.receivedBytes += datagram.payload.readableBytes
                        // A read cycle mostly holds one sender's datagrams: screen and count each address once.
                        if datagram.sender != state.engine.lastSender {
                            state.engine.lastSender = datagram.sender
                            state.engine.lastSenderRefusal = refusal(for: datagram.sender)
                            if state.engine.senders.count < 100_000, state.engine.senders.insert(datagram.sender).inserted {
                                state.counters.senders += 1
                            }
                        }
                        let (reply, reason) = state.engine.lastSenderRefusal.map { (nil, $0) }
                            ?? answer(datagram, count: state.engine.count, limiter: &state.engine.limiter)
                        if let reply {
                            outgoing.append(OutgoingDatagram(payload: reply, to: datagram.sender))
                            state.counters.replied += 1
                            state.counters.repliedBytes += reply.readableBytes
                        } else if let reason {
                            state.counters.dropped[reason, default: 0] += 1
                        }
                        if onEvent != nil {
                            events.append(Event(datagram: datagram, reply: reply.map { Array($0.readableBytesView) }, dropped: reason))
                        }
                    }
                }
                if let onEvent { events.forEach(onEvent) }
                return outgoing
            }
        } catch UDPError.closed {}
    }

    /// Counts and sends a command's reply (`exec`), made after its batch, under the same size and rate checks.
    private func finish(_ outcome: CommandRunner.Outcome, for datagram: Datagram) {
        let reply: ByteBuffer? = state.withLockedValue { state in
            var result: (ByteBuffer?, DropReason?)
            switch outcome {
            case .dropped(let reason): result = (nil, reason)
            case .reply(let bytes): result = check(configuration.append?.appended(to: bytes) ?? bytes, for: datagram, limiter: &state.engine.limiter)
            }
            if let reply = result.0 {
                state.counters.replied += 1
                state.counters.repliedBytes += reply.readableBytes
            } else if let reason = result.1 {
                state.counters.dropped[reason, default: 0] += 1
            }
            return result.0
        }
        if let reply {
            let socket = self.socket
            Task { try? await socket.send(reply, to: datagram.sender) }
        }
    }

    /// What the server remembers between datagrams.
    private struct Engine {
        var limiter: RateLimiter
        var senders = Set<UDPAddress>()
        var lastSender: UDPAddress?
        var lastSenderRefusal: DropReason?
        var count = 0
    }

    /// Why `sender` gets no reply at all, or nil.
    private func refusal(for sender: UDPAddress) -> DropReason? {
        let port = sender.port ?? -1
        if port == 0 { return .sourcePortZero }
        if configuration.blockedSourcePorts.contains(port) { return .loopPort }
        if !configuration.access.permits(sender) { return .accessDenied }
        return nil
    }

    /// The reply to a datagram from a sender that passed `refusal(for:)`.
    private func answer(_ datagram: Datagram, count: Int, limiter: inout RateLimiter) -> (ByteBuffer?, DropReason?) {
        if let runner {
            return runner.start(datagram, done: { [self] outcome in finish(outcome, for: datagram) }) ? (nil, nil) : (nil, .execBusy)
        }
        let reply: [UInt8]
        switch configuration.choose(datagram, count: count) {
        case .echo: return (datagram.payload, nil)
        case .none(let reason): return (nil, reason)
        case .bytes(let bytes): reply = bytes
        }
        return check(reply, for: datagram, limiter: &limiter)
    }

    /// The protections that depend on a reply's size: amplification under the rate limit, and what fits.
    private func check(_ reply: [UInt8], for datagram: Datagram, limiter: inout RateLimiter) -> (ByteBuffer?, DropReason?) {
        if reply.count > datagram.payload.readableBytes && !configuration.allowAmplification {
            if !limiter.allow(datagram.sender, now: ContinuousClock.now) { return (nil, .rateLimited) }
        }
        if let limit = datagram.sender.maximumPayload, reply.count > limit { return (nil, .amplification) }
        return (ByteBuffer(bytes: reply), nil)
    }
}

/// Per-source token buckets with a bounded table.
struct RateLimiter {
    let rate: Double
    let burst: Double
    private var buckets: [UDPAddress: (tokens: Double, at: ContinuousClock.Instant)] = [:]

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    mutating func allow(_ source: UDPAddress, now: ContinuousClock.Instant) -> Bool {
        // An address is keyed without its port: changing ports does not earn a new bucket.
        let key = source.withPort(0)
        var bucket = buckets[key] ?? (burst, now)
        let elapsed = now - bucket.at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        bucket.tokens = min(burst, bucket.tokens + seconds * rate)
        bucket.at = now
        let allowed = bucket.tokens >= 1
        if allowed { bucket.tokens -= 1 }
        if buckets.count >= 65_536 && buckets[key] == nil {
            // Forget full buckets first: they carry no state worth keeping.
            buckets = buckets.filter { $0.value.tokens < burst - 1e-9 }
            if buckets.count >= 65_536 { buckets.removeAll() }
        }
        buckets[key] = bucket
        return allowed
    }
}
