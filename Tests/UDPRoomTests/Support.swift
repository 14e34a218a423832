import Foundation
import NIOConcurrencyHelpers
import RoomProtocol
import ServiceLifecycle
import UDPKit
import UDPRoom
import XCTest

let ms: UInt64 = 1_000_000

/// Short timeouts, so that retransmissions, heartbeats and member timeouts happen within a test's seconds.
let fastStream = ReliableStreamConfiguration(initialTimeout: 40 * ms, minimumTimeout: 20 * ms, maximumTimeout: 200 * ms)
let fastTiming = RoomTiming(heartbeatInterval: 100 * ms, memberTimeout: 2_000 * ms, stream: fastStream)

extension RoomServer.Configuration {
    /// Fast timing; the defaults otherwise, except address limits (JOINs, pending JOINs) that let one test
    /// process (one IP address) open many members at once.
    static func fast(limits: RoomLimits = .standard) -> RoomServer.Configuration {
        var configuration = RoomServer.Configuration()
        configuration.timing = fastTiming
        configuration.limits = limits
        configuration.addressBurst = 1_000
        configuration.addressRefillInterval = 1 * ms
        configuration.maxPendingJoinsPerAddress = 1_000
        return configuration
    }
}

extension RoomClient.Configuration {
    static func fast(pacing: Int? = nil, every interval: UInt64 = 200 * ms) -> RoomClient.Configuration {
        var configuration = RoomClient.Configuration()
        configuration.stream = fastStream
        configuration.joinTimeout = 3_000 * ms
        configuration.leaveTimeout = 1_000 * ms
        configuration.commandBurst = pacing
        configuration.commandRefillInterval = interval
        return configuration
    }
}

let loopback = try! UDPAddress(ip: "127.0.0.1", port: 0)

/// A server running in a `ServiceGroup` of its own, stopped gracefully by `stop()` (members get ENDED) or cancelled by
/// `cancel()`.
final class RunningServer: Sendable {
    let server: RoomServer
    let group: ServiceGroup
    let task: Task<Void, any Error>
    let events: NIOLockedValueBox<[RoomServer.Event]>

    convenience init(_ configuration: RoomServer.Configuration = .fast(), at address: UDPAddress = loopback)
        async throws
    {
        let events = NIOLockedValueBox<[RoomServer.Event]>([])
        let server = try await RoomServer.bind(to: address, configuration: configuration) { event in
            events.withLockedValue { $0.append(event) }
        }
        self.init(server, events: events)
    }

    init(_ server: RoomServer, events: NIOLockedValueBox<[RoomServer.Event]> = .init([])) {
        self.server = server
        self.events = events
        let group = ServiceGroup(services: [server])
        self.group = group
        task = Task { try await group.run() }
    }

    var address: UDPAddress { server.localAddress }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    func cancel() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// Everything one client hears, collected as it arrives.
final class Transcript: Sendable {
    let client: RoomClient
    private let events = NIOLockedValueBox<[RoomClient.Event]>([])
    private let reader: Task<Void, Never>

    init(_ client: RoomClient) {
        self.client = client
        let events = self.events
        reader = Task {
            for await event in client.events { events.withLockedValue { $0.append(event) } }
        }
    }

    static func join(_ server: UDPAddress, _ nick: String, _ configuration: RoomClient.Configuration = .fast())
        async throws -> Transcript
    {
        Transcript(try await RoomClient.join(server, nick: nick, configuration: configuration))
    }

    var all: [RoomClient.Event] { events.withLockedValue { $0 } }

    var roomEvents: [RoomEvent] {
        all.compactMap { if case .room(let event) = $0 { event } else { nil } }
    }

    /// Texts of public messages, in order, as "nick: text" (history included).
    var messages: [String] {
        roomEvents.compactMap { if case .message(let from, _, let text, _, _) = $0 { "\(from): \(text)" } else { nil } }
    }

    /// Waits up to `timeout` seconds until `condition` holds for what was heard.
    @discardableResult
    func wait(
        timeout: Double = 5, file: StaticString = #filePath, line: UInt = #line, _ what: String = "",
        until condition: ([RoomClient.Event]) -> Bool
    ) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(all) { return true }
            try? await Task.sleep(nanoseconds: 5 * ms)
        }
        if condition(all) { return true }
        XCTFail("\(client.nick) waited \(timeout) s for \(what); heard \(all.suffix(12))", file: file, line: line)
        return false
    }

    func wait(for event: RoomEvent, timeout: Double = 5, file: StaticString = #filePath, line: UInt = #line) async {
        await wait(timeout: timeout, file: file, line: line, "\(event)") { $0.contains(.room(event)) }
    }
}

extension RoomEvent {
    /// The event without its time, for comparisons.
    var untimed: RoomEvent {
        switch self {
        case .message(let from, let kind, let text, _, let flags):
            .message(from: from, kind: kind, text: text, unixMillis: 0, flags: flags)
        case .privateMessage(let from, let to, let text, _, let flags):
            .privateMessage(from: from, to: to, text: text, unixMillis: 0, flags: flags)
        default: self
        }
    }
}

/// Waits up to `timeout` seconds for `condition`.
func eventually(
    timeout: Double = 5, _ what: String, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool
) async {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return }
        try? await Task.sleep(nanoseconds: 5 * ms)
    }
    if !condition() { XCTFail("timed out after \(timeout) s waiting for \(what)", file: file, line: line) }
}
