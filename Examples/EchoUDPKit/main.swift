// A UDP echo server in a few lines of UDPKit's async API.
//
//   swift run EchoUDPKit 9999        then: udp request 127.0.0.1 9999 hello
//
// `batches` hands over what is waiting (on Linux up to 64 datagrams), and `send(_:)` sends a whole batch at once
// (on Linux one sendmmsg, straight from this task): moving datagrams in batches, not one by one, is what makes an
// async echo fast. The task runs on the socket's own thread (`taskExecutor`), so it reads the socket itself while
// datagrams keep coming, with no hand-over between threads. A server whose answer needs no waiting can also use
// `socket.respond { batch in ... }` (what `udp echo` uses).
import UDPKit

let port = CommandLine.arguments.dropFirst().first ?? "9999"
let socket = try await UDPSocket.bind(to: UDPEndpoint.parse("127.0.0.1:\(port)"))
let server = Task(executorPreference: socket.taskExecutor) {
    for try await batch in socket.batches {
        try await socket.send(batch.map { OutgoingDatagram(payload: $0.payload, to: $0.sender) })
    }
}
try await server.value
