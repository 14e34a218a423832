import RoomProtocol

/// What a typed line asks for: a line of text to say, or a slash command.
///
/// `/me waves` acts, `/msg bob hi` whispers, `/nick al` renames, `/who` lists the members, `/quit` leaves,
/// `/help` shows the commands; `//text` says `/text`; anything else is said as it is.
public enum RoomInput: Equatable, Sendable {
    /// A command for the server.
    case command(ClientCommand)
    /// Leave the room.
    case quit
    /// Show the commands.
    case help
    /// Nothing to do (an empty line).
    case empty
    /// A slash command used wrongly; the text says how to use it.
    case invalid(String)

    /// The commands, one per line, for `/help`.
    public static let commandList = """
        /me ACTION         act: * alice waves
        /msg NICK TEXT     a private message
        /nick NAME         change your nick
        /who               who is in the room
        /quit              leave (also Ctrl-D)
        //TEXT             say a line that starts with /
        """

    /// Reads one typed line (a trailing carriage return is dropped).
    public static func parse(_ line: String) -> RoomInput {
        var line = line
        if line.hasSuffix("\r") { line.removeLast() }
        if line.allSatisfy(\.isWhitespace) { return .empty }
        guard line.hasPrefix("/") else { return .command(.say(kind: .text, text: line)) }
        if line.hasPrefix("//") { return .command(.say(kind: .text, text: String(line.dropFirst()))) }
        let name = line.dropFirst().prefix { !$0.isWhitespace }
        let rest = line.dropFirst(1 + name.count).drop { $0 == " " }
        switch name.lowercased() {
        case "me":
            return rest.isEmpty
                ? .invalid("/me needs an action: /me waves") : .command(.say(kind: .action, text: String(rest)))
        case "msg":
            let nick = rest.prefix { $0 != " " }
            let text = rest.dropFirst(nick.count).drop { $0 == " " }
            guard !nick.isEmpty, !text.isEmpty else { return .invalid("usage: /msg NICK TEXT") }
            return .command(.privateMessage(to: String(nick), text: String(text)))
        case "nick":
            let nick = rest.trimmingSpaces
            guard !nick.isEmpty, !nick.contains(" ") else { return .invalid("usage: /nick NAME (no spaces)") }
            return .command(.changeNick(nick))
        case "who", "names":
            return .command(.who)
        case "quit", "leave", "exit":
            return .quit
        case "help", "?":
            return .help
        default:
            return .invalid("unknown command /\(name): /help lists the commands, //TEXT says a line starting with /")
        }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
