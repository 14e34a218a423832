import NIOCore

/// How `UDPSocket.request(_:to:policy:)` waits and retries.
public struct RequestPolicy: Sendable, Equatable {
    /// How long to wait for a reply to the first attempt. Default 1 s.
    public var timeout: Duration = .seconds(1)
    /// How many times to resend after a timeout. Default 3 (so at most 4 sends).
    public var retries: Int = 3
    /// Each retry waits this many times longer than the previous attempt. Default 2 (exponential backoff).
    public var backoff: Double = 2

    /// The default policy: 1 s, 3 retries, doubling.
    public init() {}

    /// A policy with the given timeout, retries and backoff factor.
    public init(timeout: Duration, retries: Int, backoff: Double = 2) {
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
    }

    /// The wait of each attempt, in order: `timeout`, `timeout*backoff`, ...
    public var waits: [Duration] {
        (0...max(0, retries)).map { attempt in timeout * pow(backoff, attempt) }
    }

    /// The longest a request can take before it gives up.
    public var total: Duration { waits.reduce(.zero, +) }

    private func pow(_ base: Double, _ exponent: Int) -> Double {
        (0..<exponent).reduce(1) { value, _ in value * base }
    }
}

/// The answer to a request.
public struct Reply: Sendable {
    /// The reply datagram.
    public var datagram: Datagram
    /// Time from the most recent send to the reply's arrival.
    public var roundTrip: Duration
    /// How many times the request was sent (1 when the first attempt was answered).
    public var attempts: Int
}

extension UDPSocket {
    /// Sends `payload`, waits for a reply from the destination, and resends on timeout per `policy`.
    ///
    /// Datagrams from anyone but the destination are ignored. A reply to an earlier attempt that arrives after a
    /// resend is accepted: any reply answers the request.
    /// - Parameters:
    ///   - payload: the request.
    ///   - destination: where to send; nil on a connected socket means the peer.
    ///   - policy: timeout, retries, backoff.
    ///   - onRetry: called before each resend with the attempt number (2, 3, ...).
    /// - Throws: `UDPError.timedOut` after the last attempt; `UDPError.connectionRefused` at once when the peer
    ///   reports "port unreachable" (connected sockets); other `UDPError`s from sending.
    public func request(
        _ payload: ByteBuffer,
        to destination: UDPAddress? = nil,
        policy: RequestPolicy = .init(),
        onRetry: (@Sendable (Int) -> Void)? = nil
    ) async throws -> Reply {
        guard let peer = destination ?? remoteAddress else {
            throw UDPError.invalidAddress(
                localAddress.description, reason: "the socket is not connected; give a destination")
        }
        let clock = ContinuousClock()
        for (index, wait) in policy.waits.enumerated() {
            if index > 0 { onRetry?(index + 1) }
            try await send(payload, to: peer)
            let sentAt = clock.now
            let deadline = sentAt + wait
            while true {
                let left = deadline - clock.now
                guard left > .zero, let datagram = try await receive(timeout: left) else { break }
                if datagram.sender == peer || remoteAddress != nil {
                    return Reply(datagram: datagram, roundTrip: clock.now - sentAt, attempts: index + 1)
                }
            }
        }
        let seconds = Double(policy.total.components.seconds) + Double(policy.total.components.attoseconds) / 1e18
        throw UDPError.timedOut(seconds: seconds)
    }
}
