import Benchmark
import RoomProtocol

// The chat room's wire format (docs/room-protocol.md): what the server does for every message it fans out
// (encode one DELIVER per member) and what a client does for every datagram it gets (decode it). Pure value code,
// so its malloc counts are exact: any extra allocation per packet fails the check.

var codecThresholds: [BenchmarkMetric: BenchmarkThresholds] {
    [
        .mallocCountTotal: .init(absolute: [.p90: 0]),
        .throughput: .init(relative: [.p90: 75]),
    ]
}

/// Packets per iteration, so one iteration is long enough to time.
let packetsPerIteration = 1_000

let token = SessionToken(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210)
let message = ServerPacket.deliver(
    token: token, sequence: 4_711,
    .message(
        from: "alice", kind: .text,
        text: "the quick brown fox jumps over the lazy dog, twice over: the quick brown fox",
        unixMillis: 1_764_547_200_000, flags: [])
)
let command = ClientPacket.command(token: token, sequence: 42, .say(kind: .text, text: "hello, room"))

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.mallocCountTotal, .throughput],
        warmupIterations: 5,
        maxDuration: .seconds(1),
        maxIterations: 1_000,
        thresholds: codecThresholds
    )

    Benchmark("Encode.DeliverMessage", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            for _ in 0..<packetsPerIteration {
                blackHole(try RoomCodec.encode(message))
            }
        }
    }

    let messageBytes = try! RoomCodec.encode(message)
    Benchmark("Decode.DeliverMessage", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            for _ in 0..<packetsPerIteration {
                blackHole(try RoomCodec.decodeServerPacket(messageBytes))
            }
        }
    }

    Benchmark("RoundTrip.CommandSay", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            for _ in 0..<packetsPerIteration {
                let decoded = try RoomCodec.decodeClientPacket(try RoomCodec.encode(command))
                precondition(decoded == command)
                blackHole(decoded)
            }
        }
    }
}
