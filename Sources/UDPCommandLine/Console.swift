import NIOConcurrencyHelpers
import UDPKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Typed lines in, messages out, on one terminal, without one garbling the other.
///
/// On a terminal, the console edits the input line itself (raw mode): an incoming message erases the
/// prompt and the partial line, prints the message, and draws them again, so what the person was typing
/// stays intact. With piped standard input, lines are read as they come and messages are printed plainly.
final class Console: Sendable {
    /// The submitted lines, as raw bytes without the line ending. Ends at Ctrl-D on an empty line, at
    /// end of input, or after `close()`.
    let lines: AsyncStream<[UInt8]>

    private let editor: NIOLockedValueBox<Editor>?
    private let savedMode: termios?

    private struct Editor {
        var prompt: String
        var line: [UInt8] = []
    }

    /// Opens the console; the terminal goes to raw mode only when stdin and stdout are both terminals.
    init(prompt: String) {
        guard Terminal.stdinIsTTY && Terminal.stdoutIsTTY else {
            lines = StandardInput.lines()
            editor = nil
            savedMode = nil
            return
        }
        var mode = termios()
        tcgetattr(STDIN_FILENO, &mode)
        savedMode = mode
        var raw = mode
        // No line buffering and no echo; signals (Ctrl-C) and output processing stay as they were.
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        let editor = NIOLockedValueBox(Editor(prompt: prompt))
        self.editor = editor
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        lines = stream
        DetachedThread.start {
            var keys = KeyReader()
            var byte: UInt8 = 0
            while true {
                let n = read(STDIN_FILENO, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                switch keys.feed(byte) {
                case .none:
                    continue
                case .insert(let b):
                    editor.withLockedValue { state in
                        state.line.append(b)
                        Terminal.writeStdout(bytes: [b])
                        Terminal.flushStdout()
                    }
                case .erase:
                    editor.withLockedValue { state in
                        guard !state.line.isEmpty else { return }
                        // Remove one whole UTF-8 character: continuation bytes, then its lead byte.
                        while let last = state.line.last, last & 0xC0 == 0x80 { state.line.removeLast() }
                        if !state.line.isEmpty { state.line.removeLast() }
                        Self.redraw(state)
                    }
                case .clear:
                    editor.withLockedValue { state in
                        state.line.removeAll()
                        Self.redraw(state)
                    }
                case .submit:
                    let line = editor.withLockedValue { state in
                        let line = state.line
                        state.line.removeAll()
                        Terminal.writeStdout("\n" + state.prompt)
                        Terminal.flushStdout()
                        return line
                    }
                    continuation.yield(line)
                case .end:
                    let empty = editor.withLockedValue { $0.line.isEmpty }
                    if empty {
                        continuation.finish()
                        return
                    }
                }
            }
            continuation.finish()
        }
        Terminal.writeStdout(prompt)
        Terminal.flushStdout()
    }

    /// Prints one message (several lines allowed) above the input line.
    func show(_ text: String) {
        guard let editor else {
            Terminal.writeStdout(text + "\n")
            Terminal.flushStdout()
            return
        }
        editor.withLockedValue { state in
            Terminal.writeStdout("\r\u{1B}[K" + text + "\n")
            Self.redraw(state, clear: false)
        }
    }

    /// Puts the terminal back as it was. Safe to call more than once.
    func close() {
        guard var mode = savedMode else { return }
        Terminal.writeStdout("\r\u{1B}[K")
        Terminal.flushStdout()
        tcsetattr(STDIN_FILENO, TCSANOW, &mode)
    }

    private static func redraw(_ state: Editor, clear: Bool = true) {
        Terminal.writeStdout((clear ? "\r\u{1B}[K" : "") + state.prompt)
        Terminal.writeStdout(bytes: state.line)
        Terminal.flushStdout()
    }
}

/// Turns terminal input bytes into editing actions; escape sequences (arrow keys and the like) are
/// swallowed whole so that they never end up in a message.
struct KeyReader {
    enum Action: Equatable {
        case none
        case insert(UInt8)
        case erase, clear, submit, end
    }

    private enum State { case text, escape, sequence }
    private var state = State.text

    mutating func feed(_ byte: UInt8) -> Action {
        switch state {
        case .escape:
            state = (byte == UInt8(ascii: "[") || byte == UInt8(ascii: "O")) ? .sequence : .text
            return .none
        case .sequence:
            if (0x40...0x7E).contains(byte) { state = .text }
            return .none
        case .text:
            switch byte {
            case 0x1B:
                state = .escape
                return .none
            case 0x0D, 0x0A: return .submit
            case 0x7F, 0x08: return .erase
            case 0x15: return .clear
            case 0x04: return .end
            case 0x09: return .insert(0x20)
            case ..<0x20: return .none
            default: return .insert(byte)
            }
        }
    }
}
