import Foundation
import XCTest

/// A small network of hosts, each a network namespace of its own, for tests that broadcast and multicast.
///
/// ```
///            bridge br0 (namespace "sw")
///    ┌───────────┬───────────┬───────────┐
///    A           B           C           D
/// 10.77.1.1   10.77.1.2   10.77.1.3   10.77.2.4      (each: lan0, /24, no default route)
/// ```
///
/// D shares the wire but not the subnet, so it shows what a directed broadcast leaves out. Loopback is up
/// everywhere; IPv6 link-local addresses come without duplicate address detection, so they work at once.
/// Nothing is connected to the host's own interfaces: every packet stays in these namespaces.
///
/// Namespace names carry this process's id; `remove()` deletes them, and namespaces left by a run that crashed
/// are deleted by the next. Where namespaces cannot be made (not root, no iproute2) `shared(in:)` skips the
/// test, except with `CI=true`, where that is a failure.
final class TestLAN {
    enum Host: String, CaseIterable {
        case a, b, c, d

        var address: String {
            switch self {
            case .a: return "10.77.1.1"
            case .b: return "10.77.1.2"
            case .c: return "10.77.1.3"
            case .d: return "10.77.2.4"
            }
        }
    }

    private static let prefix = "udpt-"
    let tag: String
    let ip: String

    /// Why the network could not be built.
    struct Unavailable: Error {
        var reason: String
    }

    init() throws(Unavailable) {
        guard
            let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(
                where: FileManager.default.isExecutableFile)
        else {
            throw Unavailable(reason: "iproute2's `ip` is not installed")
        }
        guard geteuid() == 0 else { throw Unavailable(reason: "creating network namespaces needs root") }
        self.ip = ip
        tag = "\(Self.prefix)\(getpid())"
        Self.removeStale(ip: ip)
        let hosts = Host.allCases
        var script = [
            "set -e", "ip netns add \(tag)-sw", "ip -n \(tag)-sw link set lo up",
            "ip -n \(tag)-sw link add br0 type bridge mcast_snooping 0", "ip -n \(tag)-sw link set br0 up",
        ]
        for host in hosts {
            let ns = namespace(host)
            script += [
                "ip netns add \(ns)",
                "ip -n \(ns) link set lo up",
                "ip netns exec \(ns) sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
                "ip -n \(tag)-sw link add p\(host.rawValue) type veth peer name lan0 netns \(ns)",
                "ip -n \(tag)-sw link set p\(host.rawValue) master br0 up",
                "ip -n \(ns) address add \(host.address)/24 broadcast + dev lan0",
                "ip -n \(ns) link set lan0 up",
            ]
        }
        let setup = try? Run.Handle("/bin/sh", ["-c", script.joined(separator: "\n")], stdinData: Data()).finish(
            timeout: 20)
        guard setup?.status == 0 else {
            remove()
            throw Unavailable(reason: "cannot build the test network: \(setup?.stderr ?? "sh did not start")")
        }
    }

    /// The network for a test: `network` as built by a test class's `setUp()`; a skip when it could not be built
    /// (with `CI=true`, also a failure: the namespace tests must run on CI).
    static func shared(_ network: Result<TestLAN, Unavailable>?) throws -> TestLAN {
        try Run.require("python3")
        switch network {
        case .success(let lan): return lan
        case .failure(let unavailable): throw Self.unavailable(unavailable.reason)
        case nil: throw Self.unavailable("the test network was not built")
        }
    }

    func namespace(_ host: Host) -> String { "\(tag)-\(host.rawValue)" }

    /// Deletes every namespace of the network (the veth pairs and the bridge go with them).
    func remove() {
        for name in Host.allCases.map(namespace) + ["\(tag)-sw"] {
            _ = try? Run.Handle(ip, ["netns", "del", name], stdinData: Data()).finish()
        }
        let left = (try? Run.Handle(ip, ["netns", "list"], stdinData: Data()).finish().text) ?? ""
        XCTAssertFalse(left.contains(tag), "namespaces left behind: \(left)")
    }

    /// Starts the built `udp` on `host`.
    func udp(_ host: Host, _ arguments: [String]) throws -> Run.Handle {
        try Run.Handle(ip, ["netns", "exec", namespace(host), Run.udpPath] + arguments, stdinData: Data())
    }

    /// Starts `python3 -c script` on `host`.
    func python(_ host: Host, _ script: String, _ arguments: [String]) throws -> Run.Handle {
        guard let python = Run.which("python3") else { throw XCTSkip("python3 is not installed") }
        return try Run.Handle(
            ip, ["netns", "exec", namespace(host), python, "-u", "-c", script] + arguments, stdinData: nil)
    }

    private static func unavailable(_ message: String) -> XCTSkip {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("\(message) (the namespace tests must run on CI)")
        }
        return XCTSkip(message)
    }

    private static func removeStale(ip: String) {
        guard let listed = try? Run.Handle(ip, ["netns", "list"], stdinData: Data()).finish().text else { return }
        for line in listed.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(prefix), let pid = Int32(name.dropFirst(prefix.count).prefix { $0.isNumber }) else {
                continue
            }
            if kill(pid, 0) != 0 && errno == ESRCH {
                _ = try? Run.Handle(ip, ["netns", "del", name], stdinData: Data()).finish()
            }
        }
    }
}

/// Python peers on the test network, written the classic way.
enum LANPeer {
    /// Binds 0.0.0.0:PORT, prints "ready", then "got SENDER HEX" for each datagram until COUNT arrived or none
    /// came for IDLE seconds, then "done".
    static let receiver = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('0.0.0.0', int(sys.argv[1])))
        s.settimeout(float(sys.argv[3]))
        print('ready', flush=True)
        try:
            for _ in range(int(sys.argv[2])):
                data, addr = s.recvfrom(70000)
                print('got', addr[0], data.hex(), flush=True)
        except socket.timeout:
            pass
        print('done', flush=True)
        """

    /// The classic Python broadcaster: SO_BROADCAST, then one sendto(MESSAGE, (HOST, PORT)); prints "sent" or "error ERRNO".
    static let broadcaster = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
            print('sent', flush=True)
        except OSError as e:
            print('error', e.errno, flush=True)
        """

    /// What a receiver got: (sender, payload as text) pairs.
    static func received(_ handle: Run.Handle, file: StaticString = #filePath, line: UInt = #line) -> [(
        from: String, text: String
    )] {
        let result = handle.finish()
        XCTAssertTrue(
            result.text.contains("done"), "receiver did not finish: \(result.text) \(result.stderr)", file: file,
            line: line)
        return result.text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "got" else { return nil }
            var bytes: [UInt8] = []
            var hex = Substring(parts[2])
            while hex.count >= 2, let byte = UInt8(hex.prefix(2), radix: 16) {
                bytes.append(byte)
                hex = hex.dropFirst(2)
            }
            return (String(parts[1]), String(decoding: bytes, as: UTF8.self))
        }
    }
}

/// A test class whose tests run on a `TestLAN`: the network is built once before the class's tests and removed
/// after them (also when a test fails); `lan()` hands it to a test, or skips it (fails with `CI=true`) where it could
/// not be built.
class LANTestCase: XCTestCase {
    // Written only in the class-level setUp and tearDown, which XCTest runs on one thread, one class at a time.
    nonisolated(unsafe) private static var network: Result<TestLAN, TestLAN.Unavailable>?

    override class func setUp() {
        super.setUp()
        network = Result { () throws(TestLAN.Unavailable) in try TestLAN() }
    }

    override class func tearDown() {
        if case .success(let lan) = network { lan.remove() }
        network = nil
        super.tearDown()
    }

    /// The network for this test.
    func lan() throws -> TestLAN { try TestLAN.shared(Self.network) }
}
