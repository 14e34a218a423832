import ArgumentParser
import Foundation
import NIOCore
import UDPKit

struct Client: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Interactive client: each line you type is sent as a request and the reply is printed.",
        discussion: """
        Replaces the classic Python input() loop client (send a line, wait for the reply). A lost reply prints a timeout line and the loop goes on; a reply that arrives late is shown, marked late. Works with piped input for scripts. Ends at end of input (Ctrl-D).

        Examples:
          udp client 127.0.0.1 9999
          printf 'Tom\\nJerry\\n' | udp client 127.0.0.1 9999 --timeout 300ms --retries 0
        """
    )

    @Argument(help: ArgumentHelp("HOST PORT or HOST:PORT.", valueName: "target"))
    var words: [String] = []

    @OptionGroup var request: RequestOptions
    @OptionGroup var payload: PayloadOptions
    @OptionGroup var network: NetworkOptions

    func validate() throws { try request.validate() }

    func run() async throws {
        let (endpoint, extra) = try parseTarget(words, what: "server address")
        guard extra.isEmpty else { throw CLIFailure.usage("unexpected argument '\(extra[0])': type messages on standard input") }
        let formatter = DatagramFormatter(style: request.json ? .json : payload.hex ? .hex : .text, encoding: try payload.textEncoding())
        let destination = try await resolveOne(endpoint, family: try network.family())
        let socket = try await request.connect(to: destination)
        let interactive = Terminal.stdinIsTTY && !request.json && !request.raw
        let payload = self.payload
        let request = self.request
        try await closing(socket) { try await withSignalCancellation {
            var lines = StandardInput.lines().makeAsyncIterator()
            if interactive { Terminal.writeStdout("talking to \(destination); type a line and Enter, Ctrl-D to end\n> ") }
            while let line = await lines.next() {
                try Task.checkCancellation()
                do {
                    // Anything that came in since the last request is a late reply.
                    for late in try await socket.receiveBatch(timeout: .zero) {
                        Terminal.writeStdout(formatter.render(late, event: "late-reply"))
                    }
                    let bytes = try payload.bytes(fromLine: line)
                    let reply = try await socket.request(ByteBuffer(bytes: bytes), policy: request.policy)
                    request.show(reply, formatter: formatter)
                } catch let error as UDPError {
                    // A socket closed by a fatal send error cannot go on.
                    if case .closed = error { throw error }
                    if !socket.channel.isActive { throw error }
                    Terminal.writeStderr("udp: \(error)\n")
                } catch let error as PayloadError {
                    Terminal.writeStderr("udp: \(error)\n")
                }
                if interactive { Terminal.writeStdout("> ") }
                Terminal.flushStdout()
            }
            if interactive { Terminal.writeStdout("\n") }
        } }
    }
}
