import Benchmark
import NIOCore
import UDPKit

// Every benchmark moves one batch of 64 datagrams of 64 bytes per iteration, between sockets of this process on
// 127.0.0.1, and stops after 1 s or 2,000 iterations. (Names have no spaces: `thresholds check` looks up
// Thresholds/TARGET.NAME.p90.json by the name as written.) Thresholds/ holds the p90 of each metric from
// `thresholds update`; `thresholds check` fails when a run is worse by more than the tolerances below.

/// Malloc counts of the socket benchmarks depend a little on how the kernel and the event loop split a batch into
/// read cycles (each read cycle is one array of datagrams): up to 16 more allocations per batch of 64 pass.
/// Throughput is wall-clock, and its p90 (what `thresholds check` compares) is the slow tail: on a shared machine
/// it moves by half from run to run. Only a fall below a quarter of the recorded p90 fails: a gross check.
var socketThresholds: [BenchmarkMetric: BenchmarkThresholds] {
    [
        .mallocCountTotal: .init(absolute: [.p90: 16]),
        .throughput: .init(relative: [.p90: 75]),
    ]
}

/// Sending allocates the same on every iteration (2 allocations per batch of 64): 2 more pass.
var sendThresholds: [BenchmarkMetric: BenchmarkThresholds] {
    [
        .mallocCountTotal: .init(absolute: [.p90: 2]),
        .throughput: .init(relative: [.p90: 75]),
    ]
}

func configuration(
    _ thresholds: [BenchmarkMetric: BenchmarkThresholds], setup: Benchmark.BenchmarkSetupHook? = nil,
    teardown: Benchmark.BenchmarkTeardownHook? = nil
) -> Benchmark.Configuration {
    .init(
        metrics: [.mallocCountTotal, .throughput],
        warmupIterations: 20,
        maxDuration: .seconds(1),
        maxIterations: 2_000,
        thresholds: thresholds,
        setup: setup,
        teardown: teardown
    )
}

let benchmarks: @Sendable () -> Void = {
    // MARK: echo servers, the two ways UDPKit offers to write one

    let respondEcho = Rig<EchoPair>()
    Benchmark(
        "RespondEcho",
        configuration: configuration(
            socketThresholds,
            setup: { respondEcho.set(try await EchoPair.open(.respond)) },
            teardown: { await respondEcho.take()?.close() }
        )
    ) { benchmark in
        let pair = try respondEcho.get()
        let batch = Array(repeating: OutgoingDatagram(payload: payload, to: pair.server.localAddress), count: batchSize)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await pair.exchange(batch)
        }
        benchmark.stopMeasurement()
    }

    let batchesEcho = Rig<EchoPair>()
    Benchmark(
        "BatchesEcho",
        configuration: configuration(
            socketThresholds,
            setup: { batchesEcho.set(try await EchoPair.open(.batches)) },
            teardown: { await batchesEcho.take()?.close() }
        )
    ) { benchmark in
        let pair = try batchesEcho.get()
        let batch = Array(repeating: OutgoingDatagram(payload: payload, to: pair.server.localAddress), count: batchSize)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await pair.exchange(batch)
        }
        benchmark.stopMeasurement()
    }

    // MARK: the inbox: from the event loop's read cycles to a receiving task

    struct Receiving: Sendable {
        let sender: UDPSocket
        let receiver: UDPSocket
    }
    let receiving = Rig<Receiving>()
    Benchmark(
        "InboxReceiveBatch",
        configuration: configuration(
            socketThresholds,
            setup: {
                receiving.set(
                    Receiving(
                        sender: try await UDPSocket.bind(to: try loopback()),
                        receiver: try await UDPSocket.bind(to: try loopback())))
            },
            teardown: {
                if let sockets = receiving.take() {
                    await sockets.sender.close()
                    await sockets.receiver.close()
                }
            }
        )
    ) { benchmark in
        let sockets = try receiving.get()
        let batch = Array(
            repeating: OutgoingDatagram(payload: payload, to: sockets.receiver.localAddress), count: batchSize)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await sockets.sender.send(batch)
            try await sockets.receiver.receive(count: batchSize)
        }
        benchmark.stopMeasurement()
    }

    // MARK: sending a batch (on Linux: SendVector and one sendmmsg from the calling task)

    struct Sending: Sendable {
        let socket: UDPSocket
        let sink: Sink
    }
    let sending = Rig<Sending>()
    let openSending: Benchmark.BenchmarkSetupHook = {
        sending.set(Sending(socket: try await UDPSocket.bind(to: try loopback()), sink: try Sink()))
    }
    let closeSending: Benchmark.BenchmarkTeardownHook = {
        if let opened = sending.take() {
            await opened.socket.close()
            opened.sink.close()
        }
    }

    // 64 datagrams of one size to one address: joined into one UDP GSO send where the system has it.
    Benchmark(
        "SendVector.OneRun", configuration: configuration(sendThresholds, setup: openSending, teardown: closeSending)
    ) { benchmark in
        let rig = try sending.get()
        let batch = Array(repeating: OutgoingDatagram(payload: payload, to: rig.sink.address), count: batchSize)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await rig.socket.send(batch)
        }
        benchmark.stopMeasurement()
    }

    // 64 datagrams whose sizes alternate (64, 65 bytes): nothing joins, 64 messages in the vector.
    Benchmark(
        "SendVector.64Messages",
        configuration: configuration(sendThresholds, setup: openSending, teardown: closeSending)
    ) { benchmark in
        let rig = try sending.get()
        let longer = ByteBuffer(repeating: UInt8(ascii: "b"), count: payload.readableBytes + 1)
        let batch = (0..<batchSize).map {
            OutgoingDatagram(payload: $0.isMultiple(of: 2) ? payload : longer, to: rig.sink.address)
        }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await rig.socket.send(batch)
        }
        benchmark.stopMeasurement()
    }
}
