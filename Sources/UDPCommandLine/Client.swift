import ArgumentParser
import NIOCore
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Client: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Interactive client: each line you type is sent as a request and the reply is printed.",
        discussion: """
            Replaces the classic Python input() loop client (send a line, wait for the reply). A lost reply prints a timeout line and the loop goes on; a reply that arrives late is shown, marked late. Works with piped input for scripts. Ends at end of input (Ctrl-D).

            Late replies: a reply that comes after its request gave up is printed when it arrives, as 'late-reply from ADDRESS ... line=N' (with --json, "event":"late-reply" and "line"), N being the input line it answers when its bytes match that request (as an echo's do). After the last line the client waits a little (at most 5 s) for the late replies still owed.

            Exit status: 0 when every request was answered; 75 when some timed out (a message on stderr names the lines, and how many late replies were shown); 69 when the server refused (nothing listens there: ICMP port unreachable), which wins over 75; 65 when every request was answered but some lines could not be made into a datagram (bad --hex or escapes, too large).

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
        guard extra.isEmpty else {
            throw CLIFailure.usage("unexpected argument '\(extra[0])': type messages on standard input")
        }
        let formatter = DatagramFormatter(
            style: request.json ? .json : payload.hex ? .hex : .text, encoding: try payload.textEncoding())
        let destination = try await resolveOne(endpoint, family: try network.family())
        let socket = try await request.connect(to: destination)
        let interactive = Terminal.stdinIsTTY && !request.json && !request.raw
        let session = ClientSession(
            socket: socket, destination: destination, formatter: formatter, payload: payload, request: request,
            interactive: interactive)
        let outcome = try await closing(socket) { try await withSignalCancellation { try await session.run() } }
        Terminal.flushStdout()
        if let failure = outcome.failure { throw failure }
    }
}

/// One run of `udp client`: lines from stdin become requests, one at a time; the socket is read all along, so a
/// reply that comes after its request gave up is shown at once (`late-reply`), even while the client waits for the
/// next line, and for a while after the last one.
struct ClientSession: Sendable {
    let socket: UDPSocket
    let destination: UDPAddress
    let formatter: DatagramFormatter
    let payload: PayloadOptions
    let request: RequestOptions
    let interactive: Bool

    /// How long, at most, the client stays after the last line when a request went unanswered, for its late reply
    /// (twice the time a request waits in all, at least 1 s).
    static let lingerLimit: Duration = .seconds(5)

    private enum Event: Sendable {
        case line([UInt8])
        case endOfInput
        case datagrams([Datagram])
        case refused
        case failed(UDPError)
        case deadline(Int)
    }

    /// A request waiting for its reply.
    private struct Pending {
        var number: Int
        var text: String
        var bytes: [UInt8]
        var attempt = 0
        var sentAt: ContinuousClock.Instant
    }

    /// A line that got no reply.
    struct Failure {
        var number: Int
        var text: String
        var bytes: [UInt8]
    }

    struct Outcome: Sendable {
        var requests = 0
        var timedOut: [Int] = []
        var refused: [Int] = []
        var badInput: [Int] = []
        var lateReplies = 0

        /// The error to exit with: 69 when a request was refused, else 75 when one timed out, else 65 for lines
        /// that could not be turned into a datagram.
        var failure: CLIFailure? {
            let unanswered = (timedOut + refused).sorted()
            if !unanswered.isEmpty {
                var parts: [String] = []
                if !timedOut.isEmpty { parts.append("\(Self.lines(timedOut)) timed out") }
                if !refused.isEmpty { parts.append("\(Self.lines(refused)) refused") }
                var message =
                    "\(unanswered.count) of \(requests) request\(requests == 1 ? "" : "s") got no reply (\(parts.joined(separator: "; ")))"
                if lateReplies > 0 { message += "; \(lateReplies) late repl\(lateReplies == 1 ? "y" : "ies") shown" }
                return CLIFailure(
                    message: message, code: refused.isEmpty ? ExitCode32.timedOut : ExitCode32.unavailable)
            }
            if !badInput.isEmpty { return CLIFailure.data("\(Self.lines(badInput)) could not be sent (bad input)") }
            return nil
        }

        static func lines(_ numbers: [Int]) -> String {
            let shown = numbers.prefix(10).map(String.init).joined(separator: ", ")
            return (numbers.count == 1 ? "line " : "lines ") + shown
                + (numbers.count > 10 ? " and \(numbers.count - 10) more" : "")
        }
    }

    func run() async throws -> Outcome {
        let (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        let socket = self.socket
        let input = Task {
            for await line in StandardInput.lines() { continuation.yield(.line(line)) }
            continuation.yield(.endOfInput)
        }
        let receiver = Task {
            while !Task.isCancelled {
                do {
                    continuation.yield(.datagrams(try await socket.receiveBatch()))
                } catch UDPError.connectionRefused {
                    continuation.yield(.refused)
                } catch let error as UDPError {
                    continuation.yield(.failed(error))
                    return
                } catch {
                    return
                }
            }
        }
        var timer: Task<Void, Never>?
        defer {
            input.cancel()
            receiver.cancel()
            timer?.cancel()
            continuation.finish()
        }
        var timerID = 0
        func arm(_ wait: Duration) {
            timer?.cancel()
            timerID += 1
            let id = timerID
            timer = Task {
                guard (try? await Task.sleep(for: wait)) != nil else { return }
                continuation.yield(.deadline(id))
            }
        }

        let policy = request.policy
        let waits = policy.waits
        let clock = ContinuousClock()
        var outcome = Outcome()
        var queue: [(Int, [UInt8])] = []
        var lineNumber = 0
        var pending: Pending?
        var unanswered: [Failure] = []
        var lateSeen = 0
        var inputEnded = false
        var lingering = false
        var promptShown = true

        if interactive { Terminal.writeStdout("talking to \(destination); type a line and Enter, Ctrl-D to end\n> ") }

        func refuse(_ request: Pending, address: String) {
            Terminal.writeStderr(
                "udp: line \(request.number) \(request.text): \(UDPError.connectionRefused(address))\n")
            outcome.refused.append(request.number)
        }

        /// Sends the next queued line, if idle; returns true when the session is over.
        func advance() async throws -> Bool {
            while pending == nil, !queue.isEmpty {
                let (number, line) = queue.removeFirst()
                let text = Self.quoted(line)
                let bytes: [UInt8]
                do {
                    bytes = try payload.bytes(fromLine: line)
                } catch let error as PayloadError {
                    Terminal.writeStderr("udp: line \(number) \(text): \(error)\n")
                    outcome.badInput.append(number)
                    continue
                } catch let error as CLIFailure {
                    Terminal.writeStderr("udp: line \(number) \(text): \(error)\n")
                    outcome.badInput.append(number)
                    continue
                }
                outcome.requests += 1
                do {
                    try await socket.send(ByteBuffer(bytes: bytes))
                } catch UDPError.connectionRefused(let address) {
                    refuse(Pending(number: number, text: text, bytes: bytes, sentAt: clock.now), address: address)
                    continue
                } catch let error as UDPError {
                    if case .closed = error { throw error }
                    if !socket.channel.isActive { throw error }
                    Terminal.writeStderr("udp: line \(number) \(text): \(error)\n")
                    outcome.badInput.append(number)
                    outcome.requests -= 1
                    continue
                }
                pending = Pending(number: number, text: text, bytes: bytes, sentAt: clock.now)
                promptShown = false
                arm(waits[0])
            }
            if pending == nil {
                if !inputEnded {
                    if interactive && !promptShown { Terminal.writeStdout("> ") }
                    promptShown = true
                    return false
                }
                // Input is over: stay a while for the late replies of unanswered requests.
                if lateSeen < unanswered.count && !lingering {
                    lingering = true
                    arm(min(max(policy.total * 2, .seconds(1)), Self.lingerLimit))
                    return false
                }
                return lingering ? lateSeen >= unanswered.count : true
            }
            return false
        }

        session: for await event in events {
            switch event {
            case .line(let line):
                lineNumber += 1
                queue.append((lineNumber, line))
            case .endOfInput:
                inputEnded = true
            case .datagrams(let batch):
                for datagram in batch {
                    let bytes = Array(datagram.payload.readableBytesView)
                    // An echo-like server's late answer carries the payload of an earlier request: it is not the
                    // reply to the one waiting now.
                    let earlier = unanswered.last { $0.bytes == bytes }
                    if let current = pending, earlier == nil || current.bytes == bytes {
                        pending = nil
                        timer?.cancel()
                        show(datagram, roundTrip: clock.now - current.sentAt, attempts: current.attempt + 1)
                    } else {
                        lateSeen += 1
                        outcome.lateReplies += 1
                        if interactive && promptShown {
                            // Off the prompt's line; the prompt comes back after it.
                            Terminal.writeStdout("\n")
                            promptShown = false
                        }
                        let extra: [(key: String, value: JSONText.Value)] =
                            earlier.map { [("line", .int($0.number))] } ?? []
                        if request.raw {
                            Terminal.writeStdout(bytes: bytes)
                        } else {
                            Terminal.writeStdout(formatter.render(datagram, event: "late-reply", extra: extra))
                        }
                    }
                }
            case .refused:
                if let current = pending {
                    pending = nil
                    timer?.cancel()
                    refuse(current, address: destination.description)
                }
            case .failed(let error):
                throw error
            case .deadline(let id):
                guard id == timerID else { continue }
                if var current = pending {
                    current.attempt += 1
                    if current.attempt < waits.count {
                        do {
                            try await socket.send(ByteBuffer(bytes: current.bytes))
                        } catch UDPError.connectionRefused(let address) {
                            pending = nil
                            refuse(current, address: address)
                            if try await advance() { break session }
                            continue
                        }
                        current.sentAt = clock.now
                        pending = current
                        arm(waits[current.attempt])
                        continue
                    }
                    pending = nil
                    let seconds =
                        Double(policy.total.components.seconds) + Double(policy.total.components.attoseconds) / 1e18
                    Terminal.writeStderr(
                        "udp: line \(current.number) \(current.text): \(UDPError.timedOut(seconds: seconds))\n")
                    outcome.timedOut.append(current.number)
                    unanswered.append(Failure(number: current.number, text: current.text, bytes: current.bytes))
                    if unanswered.count > 64 { unanswered.removeFirst() }
                } else if lingering {
                    break
                }
            }
            if try await advance() { break }
            if lingering, case .deadline(let id) = event, id == timerID, pending == nil { break }
        }
        if interactive { Terminal.writeStdout("\n") }
        return outcome
    }

    /// Shows a reply as `udp request` does: with its round-trip time, and the attempts when more than one.
    private func show(_ datagram: Datagram, roundTrip: Duration, attempts: Int) {
        if request.raw {
            Terminal.writeStdout(bytes: Array(datagram.payload.readableBytesView))
            return
        }
        var extra: [(key: String, value: JSONText.Value)] = [
            ("rtt_ms", .double((roundTrip.milliseconds * 1000).rounded() / 1000))
        ]
        if attempts > 1 { extra.append(("attempts", .int(attempts))) }
        Terminal.writeStdout(formatter.render(datagram, event: "reply", extra: extra))
    }

    /// A line as it appears in messages: quoted, escaped, cut at 40 characters.
    static func quoted(_ line: [UInt8]) -> String {
        let text = String(decoding: line, as: UTF8.self)
        let cut = text.count > 40 ? String(text.prefix(40)) + "…" : text
        return "'" + TerminalText.escape(cut) + "'"
    }
}
