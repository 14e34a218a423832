import Foundation
import NIOConcurrencyHelpers
import RoomProtocol
import UDPKit
import UDPRoom
import XCTest

/// A NAT on loopback: members send to `address`, and it relays to the server from an outside socket of its
/// own. `rebind()` replaces that socket with one on another port and closes the old one, as a NAT that
/// forgets a mapping does: the server sees the member's packets come from a new address, and the old one
/// is dead.
final class RebindingNAT: Sendable {
    private struct State {
        var member: UDPAddress?
        var outside: UDPSocket
        var generation = 0
    }

    let inside: UDPSocket
    let server: UDPAddress
    private let state: NIOLockedValueBox<State>
    private let tasks = NIOLockedValueBox<[Task<Void, Never>]>([])

    init(server: UDPAddress) async throws {
        self.server = server
        inside = try await UDPSocket.bind(to: loopback)
        let outside = try await UDPSocket.bind(to: loopback)
        state = NIOLockedValueBox(State(outside: outside))
        start { [self] in await self.relayOut() }
        startReturnPath(outside, generation: 0)
    }

    var address: UDPAddress { inside.localAddress }
    var outsideAddress: UDPAddress { state.withLockedValue { $0.outside.localAddress } }

    /// A new outside port; the old one is closed.
    func rebind() async throws {
        let fresh = try await UDPSocket.bind(to: loopback)
        let (old, generation) = state.withLockedValue { state -> (UDPSocket, Int) in
            defer {
                state.outside = fresh
                state.generation += 1
            }
            return (state.outside, state.generation + 1)
        }
        await old.close()
        startReturnPath(fresh, generation: generation)
    }

    func stop() async {
        for task in tasks.withLockedValue({ $0 }) { task.cancel() }
        await inside.close()
        await state.withLockedValue { $0.outside }.close()
    }

    private func start(_ body: @escaping @Sendable () async -> Void) {
        let task = Task { await body() }
        tasks.withLockedValue { $0.append(task) }
    }

    private func relayOut() async {
        while !Task.isCancelled {
            guard let datagram = try? await inside.receive(timeout: .milliseconds(100)) else {
                if Task.isCancelled { return }
                continue
            }
            let outside = state.withLockedValue { state -> UDPSocket in
                state.member = datagram.sender
                return state.outside
            }
            try? await outside.send(bytes: datagram.bytes, to: server)
        }
    }

    private func startReturnPath(_ outside: UDPSocket, generation: Int) {
        start { [self] in
            while !Task.isCancelled, state.withLockedValue({ $0.generation }) == generation {
                guard let datagram = try? await outside.receive(timeout: .milliseconds(100)) else { continue }
                guard let member = state.withLockedValue({ $0.member }) else { continue }
                try? await inside.send(bytes: datagram.bytes, to: member)
            }
        }
    }
}

final class MigrationTests: XCTestCase {
    /// A member behind a NAT that gives it a new outside port keeps its session: the server challenges the new
    /// address, the client answers, and the stream moves there; everything said on either side arrives.
    func testAMemberWhoseAddressChangesMovesAfterValidating() async throws {
        let running = try await RunningServer()
        let nat = try await RebindingNAT(server: running.address)
        let alice = try await Transcript.join(running.address, "alice")
        let bob = try await Transcript.join(nat.address, "bob")
        await alice.wait(for: .joined("bob"))
        try await bob.client.say("before the move")
        await alice.wait(timeout: 5, "bob's first line") { _ in alice.messages.contains("bob: before the move") }
        let before = nat.outsideAddress

        try await nat.rebind()
        XCTAssertNotEqual(nat.outsideAddress, before)
        try await bob.client.say("after the move")
        await alice.wait(timeout: 5, "bob's line from the new port") { _ in
            alice.messages.contains("bob: after the move")
        }
        try await alice.client.say("hello bob at your new port")
        await bob.wait(timeout: 5, "alice's line at bob's new port") { _ in
            bob.messages.contains("alice: hello bob at your new port")
        }

        XCTAssertEqual(running.server.counters.migrations, 1)
        XCTAssertGreaterThanOrEqual(running.server.counters.pathChallenges, 1)
        XCTAssertTrue(
            running.events.withLockedValue { $0 }.contains(.moved(nick: "bob", from: before, to: nat.outsideAddress)))
        XCTAssertFalse(bob.all.contains { if case .sessionEnded = $0 { true } else { false } }, "the session survived")
        await alice.client.close()
        await bob.client.close()
        await nat.stop()
        await running.stop()
    }
}
