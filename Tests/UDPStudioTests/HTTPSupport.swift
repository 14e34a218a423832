import Foundation
import UDPStudio
import UDPStudioWeb
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A raw HTTP/1.1 client over a TCP socket, so tests control every header (Host, Origin) the way an attacker's page
/// or a script would.
struct HTTPReply {
    var status: Int
    var headers: [String: String]
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    func json() throws -> Any { try JSONSerialization.jsonObject(with: body) }
}

enum RawHTTP {
    static func connect(port: Int, timeout: Double = 5) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        return fd
    }

    static func requestText(_ method: String, _ path: String, port: Int, headers: [String: String], body: Data?) -> Data
    {
        var head = "\(method) \(path) HTTP/1.1\r\n"
        var all = headers
        if all["Host"] == nil { all["Host"] = "127.0.0.1:\(port)" }
        all["Connection"] = "close"
        if let body { all["Content-Length"] = String(body.count) }
        for (name, value) in all.sorted(by: { $0.key < $1.key }) where !value.isEmpty {
            head += "\(name): \(value)\r\n"
        }
        head += "\r\n"
        return Data(head.utf8) + (body ?? Data())
    }

    /// Sends one request and reads the whole reply (the server closes after it).
    static func send(_ method: String, _ path: String, port: Int, headers: [String: String] = [:], json: Any? = nil)
        throws -> HTTPReply
    {
        var headers = headers
        var body: Data?
        if let json {
            body = try JSONSerialization.data(withJSONObject: json, options: [.fragmentsAllowed])
            headers["Content-Type"] = "application/json"
        }
        let fd = try connect(port: port)
        defer { close(fd) }
        let request = requestText(method, path, port: port, headers: headers, body: body)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return try parse(data)
    }

    static func parse(_ data: Data) throws -> HTTPReply {
        guard let split = data.range(of: Data("\r\n\r\n".utf8)) else { throw POSIXError(.EBADMSG) }
        let head = String(decoding: data[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(head[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        var body = Data(data[split.upperBound...])
        if headers["transfer-encoding"] == "chunked" { body = dechunk(body) }
        return HTTPReply(status: status, headers: headers, body: body)
    }

    static func dechunk(_ data: Data) -> Data {
        var out = Data()
        var rest = data[...]
        while let lineEnd = rest.range(of: Data("\r\n".utf8)) {
            let size = Int(String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self), radix: 16) ?? 0
            if size == 0 { break }
            let start = lineEnd.upperBound
            guard rest.distance(from: start, to: rest.endIndex) >= size else {
                out.append(rest[start...])
                break
            }
            let end = rest.index(start, offsetBy: size)
            out.append(rest[start..<end])
            rest = rest[(rest.index(end, offsetBy: 2, limitedBy: rest.endIndex) ?? rest.endIndex)...]
        }
        return out
    }
}

/// A studio with its web server on 127.0.0.1, any free port, for one test.
final class RunningStudio: @unchecked Sendable {
    // `port` is written once by the server's running callback before `start` returns, then only read.
    let studio: Studio
    let server: StudioWebServer
    private(set) var port = 0
    private var task: Task<Void, any Error>?

    init(library: URL = temporaryLibrary()) throws {
        var configuration = Studio.Configuration()
        configuration.libraryLocation = library
        studio = try Studio(configuration: configuration)
        server = StudioWebServer(studio: studio, host: "127.0.0.1", port: 0)
    }

    var token: String { server.access.token }
    var auth: [String: String] { ["Authorization": "Bearer \(token)"] }

    func start() async throws {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let application = server.application { port in continuation.yield(port) }
        task = Task { try await application.run() }
        for await port in ports {
            self.port = port
            break
        }
    }

    func stop() async {
        task?.cancel()
        _ = await task?.result
        await studio.shutdown()
    }
}

/// The `udp` executable built next to this test bundle.
let udpBinaryPath: String = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("udp").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent(".build/debug/udp").path
}()
