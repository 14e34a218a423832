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

/// A named datagram the user saved: where it goes and what it carries.
public struct SavedPacket: Sendable, Codable, Equatable {
    /// The name it is found and sent by (`udp send @name`).
    public var name: String
    /// The destination, `HOST:PORT`.
    public var to: String
    /// The payload as text (with `escapes`, backslash escapes are interpreted); exclusive with `hex`.
    public var text: String?
    /// The payload as hex.
    public var hex: String?
    /// Whether `\n`, `\xNN` ... in `text` are escapes.
    public var escapes: Bool?
    /// How many times one send sends it (default 1).
    public var count: Int?
    /// Milliseconds between repeats.
    public var interval: Double?

    /// A saved packet.
    public init(
        name: String, to: String, text: String? = nil, hex: String? = nil, escapes: Bool? = nil, count: Int? = nil,
        interval: Double? = nil
    ) {
        self.name = name
        self.to = to
        self.text = text
        self.hex = hex
        self.escapes = escapes
        self.count = count
        self.interval = interval
    }

    /// The send request this packet makes.
    public var request: SendRequest {
        SendRequest(to: to, text: text, hex: hex, escapes: escapes, count: count, interval: interval)
    }
}

/// A named list of saved packets sent one after another, each followed by its delay.
public struct SavedSequence: Sendable, Codable, Equatable {
    /// One step.
    public struct Step: Sendable, Codable, Equatable {
        /// The saved packet's name.
        public var packet: String
        /// Milliseconds to wait after sending it.
        public var delay: Double
        /// A step.
        public init(packet: String, delay: Double) {
            self.packet = packet
            self.delay = delay
        }
    }

    /// The sequence's name.
    public var name: String
    /// The steps, in order.
    public var steps: [Step]

    /// A sequence.
    public init(name: String, steps: [Step]) {
        self.name = name
        self.steps = steps
    }
}

/// The saved packets and sequences, stored as one JSON file in the user's configuration directory.
public struct PacketLibrary: Sendable, Codable, Equatable {
    /// Saved packets, sorted by name.
    public var packets: [SavedPacket] = []
    /// Saved sequences, sorted by name.
    public var sequences: [SavedSequence] = []

    /// An empty library.
    public init(packets: [SavedPacket] = [], sequences: [SavedSequence] = []) {
        self.packets = packets
        self.sequences = sequences
    }

    /// `$XDG_CONFIG_HOME/udp/packets.json`, else `~/.config/udp/packets.json`.
    public static func defaultLocation(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        let base: URL
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") {
            base = URL(fileURLWithPath: xdg)
        } else {
            let home =
                environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
                ?? FileManager.default.homeDirectoryForCurrentUser.path
            base = URL(fileURLWithPath: home).appendingPathComponent(".config")
        }
        return base.appendingPathComponent("udp").appendingPathComponent("packets.json")
    }

    /// Why a file operation failed, in words: the system's reason when there is one ("Is a directory"), else the
    /// error as it describes itself.
    private static func reason(_ error: any Error) -> String {
        if let cocoa = error as? CocoaError, let posix = cocoa.underlying as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        return "\(error)"
    }

    /// Reads the library at `url`; a missing file is an empty library.
    /// - Throws: `LibraryError` when the file exists but cannot be read or is not a library.
    public static func load(from url: URL) throws(LibraryError) -> PacketLibrary {
        guard FileManager.default.fileExists(atPath: url.path) else { return PacketLibrary() }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw LibraryError(message: "cannot read \(url.path): \(Self.reason(error))")
        }
        do { return try JSONDecoder().decode(PacketLibrary.self, from: data) } catch {
            throw LibraryError(
                message:
                    "\(url.path) is not a saved-packets file (JSON with \"packets\" and \"sequences\"); fix or move it")
        }
    }

    /// Writes the library to `url` (atomically, readable by the user only), creating the directory.
    public func save(to url: URL) throws(LibraryError) {
        do {
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(self)
            let temporary = url.deletingLastPathComponent().appendingPathComponent(".packets-\(getpid()).json")
            guard
                FileManager.default.createFile(
                    atPath: temporary.path, contents: data, attributes: [.posixPermissions: 0o600])
            else {
                throw LibraryError(message: "cannot write \(temporary.path)")
            }
            guard rename(temporary.path, url.path) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(temporary.path)
                throw LibraryError(message: "cannot replace \(url.path): \(reason)")
            }
        } catch let error as LibraryError {
            throw error
        } catch {
            throw LibraryError(message: "cannot save \(url.path): \(Self.reason(error))")
        }
    }

    /// The packet named `name`.
    public func packet(named name: String) -> SavedPacket? { packets.first { $0.name == name } }

    /// Adds `packet`, replacing one with the same name.
    /// - Throws: `LibraryError` for a bad name or a packet that would not send.
    public mutating func put(_ packet: SavedPacket) throws(LibraryError) {
        try Self.checkName(packet.name)
        do { _ = try packet.request.payload() } catch {
            throw LibraryError(message: "packet '\(packet.name)': \(error)")
        }
        do { _ = try UDPEndpoint.parse(packet.to) } catch {
            throw LibraryError(message: "packet '\(packet.name)': \(error)")
        }
        packets.removeAll { $0.name == packet.name }
        packets.append(packet)
        packets.sort { $0.name < $1.name }
    }

    /// Adds `sequence`, replacing one with the same name; every step must name a saved packet.
    public mutating func put(_ sequence: SavedSequence) throws(LibraryError) {
        try Self.checkName(sequence.name)
        guard !sequence.steps.isEmpty, sequence.steps.count <= 1000 else {
            throw LibraryError(message: "sequence '\(sequence.name)': 1 to 1000 steps")
        }
        for step in sequence.steps {
            guard packet(named: step.packet) != nil else {
                throw LibraryError(message: "sequence '\(sequence.name)': no saved packet '\(step.packet)'")
            }
            guard step.delay >= 0, step.delay <= 3_600_000 else {
                throw LibraryError(message: "sequence '\(sequence.name)': a delay must be 0 to 3600000 ms")
            }
        }
        sequences.removeAll { $0.name == sequence.name }
        sequences.append(sequence)
        sequences.sort { $0.name < $1.name }
    }

    /// Names are 1 to 64 characters, without control characters or '/'.
    static func checkName(_ name: String) throws(LibraryError) {
        guard !name.isEmpty, name.count <= 64 else { throw LibraryError(message: "a name must be 1 to 64 characters") }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "/" }) {
            throw LibraryError(message: "a name cannot contain control characters or '/'")
        }
    }
}

/// A problem with the saved-packets library.
public struct LibraryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, in one line.
    public var message: String
    public var description: String { message }
}
