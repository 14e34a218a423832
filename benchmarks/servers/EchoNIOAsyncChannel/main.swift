// A UDP echo server written with NIOAsyncChannel: `for try await` over the inbound datagrams and
// one `write` per datagram. A baseline for the benchmark harness.
//
//   EchoNIOAsyncChannel PORT     binds 127.0.0.1:PORT
import NIOCore
import NIOPosix

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 9999 : 9999
let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
    .channelOption(.socketOption(.so_reuseaddr), value: 1)
    .bind(host: "127.0.0.1", port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
            try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(
                wrappingChannelSynchronously: channel)
        }
    }
try await channel.executeThenClose { inbound, outbound in
    for try await envelope in inbound {
        try await outbound.write(envelope)
    }
}
