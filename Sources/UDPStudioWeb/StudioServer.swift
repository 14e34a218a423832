import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import UDPStudio

/// The studio's web page, JSON API and live stream, over a `Studio`. A thin layer: every decision is the engine's.
///
/// Routes (all need the token; see `StudioAccess`):
/// - `GET /` the page; `GET /s/TOKEN/FILE` its scripts and styles;
/// - `GET /api/state` listeners, totals, saved packets; `GET /api/datagrams?after=ID&limit=N` the history, newest last;
///   `DELETE /api/datagrams` clears it;
/// - `POST /api/send` a `SendRequest`; `POST /api/send/stop`;
/// - `GET/POST /api/listeners`, `DELETE /api/listeners/ID`, `PUT /api/listeners/ID/rules`;
/// - `GET /api/packets`, `PUT /api/packets/NAME`, `DELETE /api/packets/NAME`, `POST /api/packets/NAME/send`,
///   `PUT /api/sequences/NAME`, `POST /api/sequences/NAME/run`;
/// - `GET /api/events` server-sent events: `records` (new datagrams, at most `streamBatch` per message: a fast stream
///   is sampled) and `stats` (exact counters, every second).
public struct StudioWebServer: Sendable {
    /// The engine.
    public let studio: Studio
    /// The access checks.
    public let access: StudioAccess
    /// Host and port to listen on.
    public let host: String
    /// The requested port (0: any free port).
    public let port: Int
    /// The most records one live-stream message carries.
    public var streamBatch = 500

    private let boundPort = NIOLockedValueBox<Int?>(nil)

    /// A server for `studio` on `host:port` (port 0 picks a free one), with a new random token.
    public init(studio: Studio, host: String = "127.0.0.1", port: Int = 8425, token: String = StudioAccess.makeToken())
    {
        self.studio = studio
        self.host = host
        self.port = port
        self.access = StudioAccess(token: token, boundHost: host.contains(":") ? "[\(host)]" : host)
    }

    /// The address to open, once the server runs.
    public func pageURL(port: Int) -> String { "http://\(access.boundHost):\(port)/?token=\(access.token)" }

    /// The Hummingbird application; run it with `runService()` or inside a `ServiceGroup`.
    /// `onRunning` receives the bound port when the server accepts connections.
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: AccessMiddleware(access: access, boundPort: boundPort))
        addRoutes(to: router)
        var logger = Logger(label: "udp.studio")
        logger.logLevel = .critical
        let boundPort = self.boundPort
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                boundPort.withLockedValue { $0 = port }
                await onRunning(port)
            },
            logger: logger
        )
    }

    // MARK: - Routes

    private func addRoutes(to router: Router<BasicRequestContext>) {
        let studio = self.studio
        let token = access.token
        let batch = streamBatch

        router.get("/") { _, _ in
            Self.asset("index.html", token: token)
        }
        router.get("/s/:token/:file") { _, context in
            let file = context.parameters.get("file") ?? ""
            return Self.asset(file, token: token)
        }
        router.get("/api/state") { _, _ in
            try Self.json(StateBody(snapshot: studio.snapshot(), library: studio.library))
        }
        router.get("/api/datagrams") { request, _ in
            let after = request.uri.queryParameters.get("after", as: Int.self) ?? 0
            let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 10_000, 0), 100_000)
            let records = studio.records(after: after, limit: limit)
            return try Self.json(RecordsBody(records: records, last: studio.snapshot().lastID))
        }
        router.delete("/api/datagrams") { _, _ in
            studio.clearHistory()
            return try Self.json(OK())
        }
        router.post("/api/send") { request, context in
            let body: SendRequest
            do { body = try await request.decode(as: SendRequest.self, context: context) } catch {
                return Self.problem(
                    .badRequest, "the body must be JSON such as {\"to\":\"127.0.0.1:9000\",\"text\":\"hello\"}")
            }
            let result: SendResult
            do {
                result = try await studio.send(body)
            } catch let error as SendError {
                if case .badInput(let message) = error { return Self.problem(.badRequest, message) }
                return Self.problem(.badGateway, error.description)
            } catch {
                return Self.problem(.badGateway, "\(error)")
            }
            return try Self.json(result)
        }
        router.post("/api/send/stop") { _, _ in
            studio.stopSending()
            return try Self.json(OK())
        }
        router.get("/api/listeners") { _, _ in
            try Self.json(studio.listeners)
        }
        router.post("/api/listeners") { request, context in
            let spec: ListenerSpec
            do { spec = try await request.decode(as: ListenerSpec.self, context: context) } catch {
                return Self.problem(.badRequest, "the body must be JSON such as {\"address\":\"127.0.0.1:9000\"}")
            }
            do {
                return try Self.json(try await studio.addListener(spec), status: .created)
            } catch {
                return Self.problem(.badRequest, "\(error)")
            }
        }
        router.delete("/api/listeners/:id") { _, context in
            guard let id = context.parameters.get("id", as: Int.self), await studio.removeListener(id) else {
                return Self.problem(.notFound, "no such listener")
            }
            return try Self.json(OK())
        }
        router.put("/api/listeners/:id/rules") { request, context in
            let rules: [AutoReplyRule]
            do { rules = try await request.decode(as: [AutoReplyRule].self, context: context) } catch {
                return Self.problem(.badRequest, "the body must be a JSON array of {\"match\",\"pattern\",\"reply\"}")
            }
            do {
                try studio.setRules(rules, listener: context.parameters.get("id", as: Int.self) ?? -1)
            } catch let error as StudioError {
                return Self.problem(.notFound, error.description)
            } catch {
                return Self.problem(.badRequest, "\(error)")
            }
            return try Self.json(OK())
        }
        router.get("/api/packets") { _, _ in
            try Self.json(studio.library)
        }
        router.put("/api/packets/:name") { request, context in
            guard
                let packet = try? await Self.decodeNamed(
                    SavedPacket.self, request, name: Self.pathName(context.parameters.get("name")) ?? "")
            else {
                return Self.problem(
                    .badRequest, "the body must be JSON such as {\"to\":\"127.0.0.1:9000\",\"text\":\"hi\"}")
            }
            do { try studio.save(packet) } catch { return Self.problem(.badRequest, "\(error)") }
            return try Self.json(packet)
        }
        router.delete("/api/packets/:name") { _, context in
            guard let name = Self.pathName(context.parameters.get("name")), (try? studio.deleteSaved(name)) == true
            else {
                return Self.problem(.notFound, "no such saved packet")
            }
            return try Self.json(OK())
        }
        router.post("/api/packets/:name/send") { _, context in
            do {
                return try Self.json(try await studio.sendSaved(Self.pathName(context.parameters.get("name")) ?? ""))
            } catch let error as StudioError {
                return Self.problem(.notFound, error.description)
            } catch {
                return Self.problem(.badRequest, "\(error)")
            }
        }
        router.put("/api/sequences/:name") { request, context in
            guard
                let sequence = try? await Self.decodeNamed(
                    SavedSequence.self, request, name: Self.pathName(context.parameters.get("name")) ?? "")
            else {
                return Self.problem(
                    .badRequest, "the body must be JSON such as {\"steps\":[{\"packet\":\"hello\",\"delay\":100}]}")
            }
            do { try studio.save(sequence) } catch { return Self.problem(.badRequest, "\(error)") }
            return try Self.json(sequence)
        }
        router.post("/api/sequences/:name/run") { _, context in
            do {
                return try Self.json(
                    Sent(sent: try await studio.runSequence(Self.pathName(context.parameters.get("name")) ?? "")))
            } catch let error as StudioError {
                return Self.problem(.notFound, error.description)
            } catch {
                return Self.problem(.badRequest, "\(error)")
            }
        }
        router.get("/api/events") { request, _ in
            let after = request.uri.queryParameters.get("after", as: Int.self)
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-store"
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody { writer in
                    // A stream never ends by itself: end it when the server shuts down gracefully (SIGINT, SIGTERM).
                    let (events, continuation) = AsyncStream<ByteBuffer>.makeStream(
                        bufferingPolicy: .bufferingNewest(64))
                    let producer = Task {
                        await cancelWhenGracefulShutdown {
                            await Self.stream(studio, after: after, batch: batch, to: continuation)
                        }
                        continuation.finish()
                    }
                    defer { producer.cancel() }
                    for await event in events { try await writer.write(event) }
                    try await writer.finish(nil)
                })
        }
    }

    /// Writes `records` events as the history grows (at most ten a second, each with at most `batch` of the newest
    /// records) and a `stats` event every second, until the client goes away or the studio shuts down.
    private static func stream(
        _ studio: Studio, after: Int?, batch: Int, to output: AsyncStream<ByteBuffer>.Continuation
    ) async {
        let (ticks, tick) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let changes = studio.changes()
        let forward = Task {
            for await _ in changes { tick.yield() }
            tick.finish()
        }
        let clock = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                tick.yield()
            }
        }
        defer {
            forward.cancel()
            clock.cancel()
        }
        var last = after ?? studio.snapshot().lastID
        var lastStats = ContinuousClock.now - .seconds(2)
        output.yield(ByteBuffer(string: "retry: 1000\n\n"))
        for await _ in ticks {
            if Task.isCancelled { return }
            let records = studio.records(after: last, limit: batch)
            if let newest = records.last {
                let total = studio.snapshot().lastID
                let skipped = max(0, newest.id - last - records.count)
                last = newest.id
                guard let message = try? event("records", RecordsBody(records: records, last: total, skipped: skipped))
                else { return }
                output.yield(message)
            }
            if ContinuousClock.now - lastStats >= .milliseconds(900) {
                lastStats = .now
                guard let message = try? event("stats", studio.snapshot()) else { return }
                output.yield(message)
            }
            // Bounds the page's work on a fast stream: the counters stay exact, the rows are sampled.
            do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
        }
    }

    private static func event(_ name: String, _ value: some Encodable) throws -> ByteBuffer {
        var buffer = ByteBuffer(string: "event: \(name)\ndata: ")
        buffer.writeBytes(try JSONEncoder().encode(value))
        buffer.writeString("\n\n")
        return buffer
    }

    /// A saved packet's or sequence's name from the path, where the page percent-encodes it (names may hold spaces).
    static func pathName(_ raw: String?) -> String? {
        raw.map { $0.removingPercentEncoding ?? $0 }
    }

    /// Decodes a JSON object whose name comes from the path (a "name" in the body is overridden).
    static func decodeNamed<T: Decodable>(_ type: T.Type, _ request: Request, name: String) async throws -> T {
        var request = request
        let body = try await request.collectBody(upTo: 1 << 20)
        guard var object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "not an object"))
        }
        object["name"] = name
        return try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: object))
    }

    // MARK: - Responses

    struct OK: Codable { var ok = true }
    struct Sent: Codable { var sent: Int }
    struct StateBody: Codable {
        var snapshot: StudioSnapshot
        var library: PacketLibrary
    }
    struct RecordsBody: Codable {
        var records: [StudioRecord]
        var last: Int
        var skipped: Int?
    }
    struct Problem: Codable { var error: String }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(
            status: status, headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(value))))
    }

    static func problem(_ status: HTTPResponse.Status, _ message: String) -> Response {
        (try? json(Problem(error: message), status: status)) ?? Response(status: status)
    }

    static func asset(_ name: String, token: String) -> Response {
        guard let (bytes, type) = PageAssets.file(name) else { return problem(.notFound, "no such file") }
        var headers = HTTPFields()
        headers[.contentType] = type
        var body = ByteBuffer(bytes: bytes)
        if name == "index.html" {
            // The page loads its scripts and styles from /s/TOKEN/, so they need the token too; the token is hex.
            body = ByteBuffer(
                string: String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "{{TOKEN}}", with: token))
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }
}

/// Refuses requests that fail `StudioAccess`, and sets the headers that keep the page from being framed, sniffed,
/// cached or leaking its URL (which holds the token).
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let access: StudioAccess
    let boundPort: NIOLockedValueBox<Int?>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let parts = StudioAccess.RequestParts(
            method: request.method.rawValue, path: request.uri.path,
            queryToken: request.uri.queryParameters.get("token"),
            authorization: request.headers[.authorization], host: request.head.authority,
            origin: request.headers[.origin], fetchSite: request.headers[.init("Sec-Fetch-Site")!]
        )
        var response: Response
        switch access.check(parts, port: boundPort.withLockedValue { $0 } ?? -1) {
        case .allowed:
            response = try await next(request, context)
        case .unauthorized(let message):
            response = StudioWebServer.problem(.unauthorized, message)
        case .forbidden(let message):
            response = StudioWebServer.problem(.forbidden, message)
        }
        response.headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        response.headers[.init("X-Content-Type-Options")!] = "nosniff"
        response.headers[.init("Referrer-Policy")!] = "no-referrer"
        response.headers[.init("X-Frame-Options")!] = "DENY"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}
