import Foundation
import XCTest

/// The README's console examples, run: every ```console block either runs here on loopback, against peers this
/// test starts, and must print what the README shows (clock times, ephemeral ports and measured figures aside),
/// or is listed below with the reason it cannot run here. A new block fails the test until it is one or the other.
final class ReadmeExamplesTests: XCTestCase {
    /// One `$ command` of a README block and the lines the README shows it printing.
    struct Example {
        var command: String
        var output: [String]
    }

    struct Block {
        var line: Int
        var examples: [Example]
        var key: String { examples.first?.command ?? "" }
    }

    /// What stands at a README port while a block runs.
    enum PortUse {
        /// A Python receiver on :: (IPv4 and IPv6) that takes whatever comes.
        case receiver
        /// A Python echo server on 127.0.0.1 that ignores the first `skip` datagrams.
        case echo(skip: Int)
        /// Nothing: a port no one uses (a closed port, or one a command of the block binds itself).
        case free
    }

    enum Runner {
        /// The block's commands in order in one bash, with job control; `loose` compares the shape of lines whose
        /// numbers are measurements (every number becomes N).
        case script(peers: [Int: PortUse], loose: Bool)
        /// Each `udp listen` example: the datagrams its output shows are sent to it, from as many sockets as it
        /// shows senders.
        case listen
    }

    /// The blocks that run, by their first command.
    static let runs: [String: Runner] = [
        "udp send 127.0.0.1 9999 hello world": .script(peers: [9999: .receiver], loose: false),
        "udp listen 127.0.0.1:9999": .listen,
        "udp request 127.0.0.1 9998 ping --timeout 300ms": .script(
            peers: [9998: .echo(skip: 1), 9997: .free], loose: false),
        "udp echo 9991 --quiet &": .script(peers: [9991: .free], loose: true),
        "udp proxy 9000 127.0.0.1 9999 --loss 10% --delay 20ms --jitter 5ms --seed 7 &": .script(
            peers: [9000: .free, 9999: .echo(skip: 0)], loose: true),
    ]

    /// The blocks that do not run here, and why.
    static let skipped: [String: String] = [
        "udp client 127.0.0.1 9998":
            "its late-reply and exit-status lines are being reworked; RequestClientTests holds udp client",
        "udp echo 127.0.0.1:9993 --reply":
            "its summary's counts are being reworked (replies the kernel refused); EchoCLITests holds the greeting server and loop protection",
        "udp chat 127.0.0.1 4567": "interactive on a terminal; ChatCLITests drives it through tmux",
        "udp room serve 9000": "three terminals at once; RoomCLITests holds the room",
        "udp bench sink 9000 &":
            "flood/sink figures are being reworked (loss against the sent count); BenchCLITests holds them",
        "udp bench flood 127.0.0.1 9999 --window": "flood/sink figures are being reworked; BenchCLITests holds them",
        "udp interfaces": "shows the interfaces of the machine it was run on",
        "printf ping | udp pipe 127.0.0.1 9990":
            "ends in a pipe --listen that runs until interrupted; ToolkitCLITests holds udp pipe both ways",
        "udp echo 127.0.0.1:9991 --exec":
            "a server and its Ctrl-C summary in two terminals; ToolkitCLITests holds --exec",
        "udp echo 127.0.0.1:9992 --quiet --rule":
            "a server and its Ctrl-C summary in two terminals; ToolkitCLITests holds --rule",
        "udp send 127.0.0.1 9994 'seq={counter}":
            "random bytes and clock times in the output; ToolkitCLITests holds --template, --append and --forever",
        "udp request 127.0.0.1 9995 \"who is there?\" --all": "needs two answering hosts; ToolkitCLITests holds --all",
        "udp listen 127.0.0.1:9996 --pcap":
            "needs datagrams from a second terminal and tshark; ToolkitCLITests holds --pcap and replay",
        "udp broadcast 2425 1:100":
            "needs two hosts on a LAN; BroadcastMulticastCLITests builds one in network namespaces",
        "udp broadcast 2425 hi --limited": "needs a host without a default route; BroadcastMulticastCLITests",
        "udp listen 5000 --join 239.1.2.3":
            "needs a LAN and a host without a default route; BroadcastMulticastCLITests",
    ]

    static var readme: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
    }

    /// The ```console blocks: `$ ` starts a command (its `$ ` and a trailing `# comment` kept as the shell reads
    /// them), the lines up to the next command or blank line are its output.
    static func blocks(in text: String) -> [Block] {
        var blocks: [Block] = []
        var current: Block?
        for (number, line) in text.components(separatedBy: "\n").enumerated() {
            if current == nil {
                if line.hasPrefix("```console") { current = Block(line: number + 1, examples: []) }
                continue
            }
            if line.hasPrefix("```") {
                blocks.append(current!)
                current = nil
            } else if line.hasPrefix("$ ") {
                current!.examples.append(Example(command: String(line.dropFirst(2)), output: []))
            } else if !line.isEmpty, !current!.examples.isEmpty {
                current!.examples[current!.examples.count - 1].output.append(line)
            }
        }
        return blocks
    }

    func testEveryConsoleBlockRunsOrSaysWhyNot() throws {
        let blocks = Self.blocks(in: Self.readme)
        XCTAssertGreaterThan(blocks.count, 10, "README console blocks not found")
        var ran = Set<String>()
        for block in blocks {
            if let (key, runner) = Self.runs.first(where: { block.key.hasPrefix($0.key) }) {
                ran.insert(key)
                switch runner {
                case .script(let peers, let loose): try runScript(block, peers: peers, loose: loose)
                case .listen: try runListen(block)
                }
            } else if !Self.skipped.keys.contains(where: { block.key.contains($0) }) {
                XCTFail(
                    "README line \(block.line): the block starting '$ \(block.key)' neither runs in ReadmeExamplesTests nor says why not"
                )
            }
        }
        XCTAssertEqual(ran, Set(Self.runs.keys), "blocks this test runs are gone from the README")
    }

    // MARK: - Running

    private func runScript(_ block: Block, peers: [Int: PortUse], loose: Bool) throws {
        var handles: [Run.Handle] = []
        defer { handles.forEach { _ = $0.finish(timeout: 1, signal: SIGTERM) } }
        var ports: [Int: Int] = [:]
        for (readmePort, peer) in peers {
            switch peer {
            case .receiver:
                let handle = try Run.python(Self.dualStackReceiver)
                handles.append(handle)
                ports[readmePort] = try ReadmeExamplesTests.port(of: handle)
            case .echo(let skip):
                let handle = try Run.python(udpTests.Peer.echo, ["127.0.0.1", String(skip)])
                handles.append(handle)
                ports[readmePort] = try ReadmeExamplesTests.port(of: handle)
            case .free:
                ports[readmePort] = try Self.freePort()
            }
        }
        let directory = try Self.workDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var script = """
            set -m
            exec 2>&1
            cd '\(directory.path)'
            export PATH='\(directory.path)':"$PATH"
            waitbound() { for _ in $(seq 100); do grep -qi ":$(printf %04X "$1") " /proc/net/udp /proc/net/udp6 && return; sleep 0.05; done; }

            """
        for (index, example) in block.examples.enumerated() {
            var command = Self.mapPorts(example.command, ports)
            script += "s=$?; echo '@@@ \(index)'; (exit $s)\n"
            if command.hasPrefix("kill "), let job = command.split(separator: " ").last, job.hasPrefix("%") {
                command += "; wait \(job)"
            }
            script += command + "\n"
            // A background server must be bound before the next command sends to it: the first port it names.
            let named = ports.keys.compactMap { port in
                example.command.range(of: String(port)).map { (port, $0.lowerBound) }
            }
            if example.command.hasSuffix("&"), let first = named.min(by: { $0.1 < $1.1 }), let port = ports[first.0] {
                script += "waitbound \(port)\n"
            }
        }
        script += "echo '@@@ end'\nkill -KILL $(jobs -p) 2>/dev/null\n"
        let run = try Run.program("bash", ["-c", script]).finish(timeout: 30)
        let sections = Self.sections(run.text, count: block.examples.count)
        let back = Dictionary(uniqueKeysWithValues: ports.map { ($1, $0) })
        for (index, example) in block.examples.enumerated() {
            // Job control's own notices ("[1]+  Interrupt ...") are the shell's, not the example's.
            let printed = sections[index].filter {
                $0.range(of: #"^\[\d+\][+-]? "#, options: .regularExpression) == nil
            }
            let actual = printed.map {
                Self.normalize(Self.mapPorts($0, back), loose: loose, readmePorts: Set(ports.keys))
            }
            let expected = example.output.map { Self.normalize($0, loose: loose, readmePorts: Set(ports.keys)) }
            XCTAssertEqual(
                actual, expected,
                "README line \(block.line): $ \(example.command)\nprinted:\n\(sections[index].joined(separator: "\n"))")
        }
    }

    private func runListen(_ block: Block) throws {
        for example in block.examples {
            let port = try Self.freePort()
            let command = Self.mapPorts(example.command, [9999: port])
            let datagrams = try Self.datagrams(shownIn: example.output)
            XCTAssertFalse(datagrams.isEmpty, "no datagram found in the output of $ \(example.command)")
            let listener = try Run.program(
                "bash",
                [
                    "-c",
                    "exec 2>&1; exec "
                        + command.replacingOccurrences(of: "udp ", with: "'\(Run.udpPath)' ", options: .anchored),
                ])
            XCTAssertTrue(Peer.waitBound(port), "listener did not bind \(port)")
            // One socket per sender the README shows, in the family it shows.
            var arguments: [String] = [String(port)]
            for datagram in datagrams {
                arguments += [
                    datagram.ipv6 ? "6" : "4", String(datagram.sender),
                    datagram.bytes.map { String(format: "%02x", $0) }.joined(),
                ]
            }
            _ = try Run.python(Self.sender, arguments).finish()
            let counted = command.contains("--count")
            if !counted { usleep(300_000) }
            let result = listener.finish(timeout: 5, signal: counted ? nil : SIGINT)
            let actual = result.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter {
                !$0.isEmpty
            }
            let expected = example.output.filter { $0 != "^C" }
            XCTAssertEqual(
                actual.map { Self.normalize(Self.mapPorts($0, [port: 9999]), loose: false, readmePorts: [9999]) },
                expected.map { Self.normalize($0, loose: false, readmePorts: [9999]) },
                "README line \(block.line): $ \(example.command)\nprinted:\n\(result.text)")
        }
    }

    // MARK: - Reading the README's output

    struct Shown {
        var ipv6: Bool
        var sender: Int
        var bytes: [UInt8]
    }

    /// The datagrams a `udp listen` output shows: text lines (escapes undone), hex dumps, JSON objects.
    static func datagrams(shownIn lines: [String]) throws -> [Shown] {
        var shown: [Shown] = []
        let header = try NSRegularExpression(pattern: #"^\S+  (\S+):(\d+)  (\d+) bytes(?:  (.*))?$"#)
        for line in lines {
            if line.hasPrefix("{"),
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let payload = object["payload"] as? String, let data = Data(base64Encoded: payload)
            {
                shown.append(
                    Shown(
                        ipv6: (object["from"] as? String ?? "").contains(":"), sender: object["port"] as? Int ?? 0,
                        bytes: Array(data)))
            } else if let match = header.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) {
                func group(_ i: Int) -> String? { Range(match.range(at: i), in: line).map { String(line[$0]) } }
                let text = group(4).map(unescape) ?? []
                shown.append(Shown(ipv6: group(1)!.hasPrefix("["), sender: Int(group(2)!)!, bytes: text))
                XCTAssertTrue(
                    group(4) == nil || text.count == Int(group(3)!), "'\(line)': the text is not \(group(3)!) bytes")
            } else if line.count > 10, line.prefix(8).allSatisfy(\.isHexDigit), let bar = line.firstIndex(of: "|"),
                !shown.isEmpty
            {
                let hex = line[line.index(line.startIndex, offsetBy: 8)..<bar].split(separator: " ")
                shown[shown.count - 1].bytes += hex.compactMap { UInt8($0, radix: 16) }
            }
        }
        return shown
    }

    /// Undoes the escaping `udp` shows text with: \xNN, \a, \e, \t, \n, \r, \0, \\.
    static func unescape(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            guard byte == UInt8(ascii: "\\"), let next = input.popFirst() else {
                bytes.append(byte)
                continue
            }
            switch next {
            case UInt8(ascii: "x"):
                let digits = String(decoding: input.prefix(2), as: UTF8.self)
                input = input.dropFirst(2)
                bytes.append(UInt8(digits, radix: 16) ?? 0)
            case UInt8(ascii: "a"): bytes.append(7)
            case UInt8(ascii: "e"): bytes.append(27)
            case UInt8(ascii: "t"): bytes.append(9)
            case UInt8(ascii: "n"): bytes.append(10)
            case UInt8(ascii: "r"): bytes.append(13)
            case UInt8(ascii: "0"): bytes.append(0)
            default: bytes.append(next)
            }
        }
        return bytes
    }

    // MARK: - Comparing

    /// Clock times, ISO times, the ports the system chose and round-trip times vary from run to run; with
    /// `loose`, every figure does.
    static func normalize(_ line: String, loose: Bool, readmePorts: Set<Int>) -> String {
        var text = line
        func replace(_ pattern: String, _ template: String) {
            text = text.replacingOccurrences(of: pattern, with: template, options: .regularExpression)
        }
        replace(#"\b\d\d:\d\d:\d\d\.\d{3}\b"#, "TIME")
        replace(#""time":"[^"]*""#, #""time":"TIME""#)
        replace(#""port":\d+"#, #""port":PORT"#)
        replace(#"rtt_ms=[0-9.]+"#, "rtt_ms=N")
        // host:port with a port that is not one of the block's README ports: the system chose it.
        let address = try! NSRegularExpression(pattern: #"(\d+\.\d+\.\d+\.\d+|\]):(\d+)"#)
        for match in address.matches(in: text, range: NSRange(text.startIndex..., in: text)).reversed() {
            guard let range = Range(match.range(at: 2), in: text), let port = Int(text[range]),
                !readmePorts.contains(port)
            else { continue }
            text.replaceSubrange(range, with: "PORT")
        }
        if loose {
            replace(#"\d+(\.\d+)?[kMG]?"#, "N")
            replace(#"N (µs|ms|ns|s)\b"#, "N U")
            replace(#"N\.N\.N\.N"#, "ADDRESS")
        }
        return text
    }

    static func mapPorts(_ text: String, _ ports: [Int: Int]) -> String {
        var text = text
        for (from, to) in ports {
            text = text.replacingOccurrences(
                of: #"(?<![0-9.])\#(from)(?![0-9])"#, with: String(to), options: .regularExpression)
        }
        return text
    }

    /// The output between the `@@@ i` markers, one list of lines per example.
    static func sections(_ output: String, count: Int) -> [[String]] {
        var sections = Array(repeating: [String](), count: count)
        var current: Int?
        for line in output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("@@@ ") {
                current = Int(line.dropFirst(4))
            } else if let current, !line.isEmpty {
                sections[current].append(line)
            }
        }
        return sections
    }

    // MARK: - Peers and ports

    static let dualStackReceiver = """
        import socket
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(('::', 0))
        s.settimeout(10)
        print('ready', s.getsockname()[1], flush=True)
        while True:
            try:
                data, addr = s.recvfrom(70000)
            except socket.timeout:
                break
        """

    /// Sends to 127.0.0.1 or ::1 PORT: then triples FAMILY SENDER HEX, one socket per SENDER.
    static let sender = """
        import socket, sys, time
        port = int(sys.argv[1])
        socks = {}
        args = sys.argv[2:]
        for i in range(0, len(args), 3):
            fam, who, payload = args[i], args[i + 1], bytes.fromhex(args[i + 2])
            if (fam, who) not in socks:
                socks[(fam, who)] = socket.socket(socket.AF_INET6 if fam == '6' else socket.AF_INET, socket.SOCK_DGRAM)
            socks[(fam, who)].sendto(payload, ('::1' if fam == '6' else '127.0.0.1', port))
            time.sleep(0.02)
        """

    static func port(of handle: Run.Handle) throws -> Int {
        try udpTests.Peer.port(of: handle)
    }

    /// A UDP port nothing uses now (bound to 0, read, closed).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw XCTSkip("no socket") }
        defer { close(fd) }
        var no: Int32 = 0
        setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &no, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw XCTSkip("cannot bind a UDP socket") }
        return Int(UInt16(bigEndian: address.sin6_port))
    }

    /// A directory with `udp` on it (for the examples' PATH) and the files they name.
    static func workDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("udp-readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("udp").path, withDestinationPath: Run.udpPath)
        try Data([0x01, 0x02, 0x03, 0x00, 0xff]).write(to: directory.appendingPathComponent("packet.bin"))
        return directory
    }
}
