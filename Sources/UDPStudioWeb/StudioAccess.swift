/// Who may use the studio's web page and API: the checks every request passes, as pure value code.
///
/// - The token (at least 128 bits, new each start) must come as `Authorization: Bearer TOKEN`, the `token` query
///   parameter, or (for the page's own scripts and styles) the first path segment after `/s/`.
/// - The Host header must name the address the studio is bound to, or localhost, with the bound port: a page on
///   some other name that resolves to 127.0.0.1 (DNS rebinding) is refused.
/// - State-changing requests and the live stream must not come from another origin: an `Origin` header, when
///   present, must be `http://` plus the Host, and `Sec-Fetch-Site: cross-site` is refused. Browsers send `Origin` on
///   every cross-origin request, so a foreign page cannot drive the studio; scripts (curl, Python) send none.
public struct StudioAccess: Sendable {
    /// The decision for one request.
    public enum Verdict: Equatable, Sendable {
        /// Go ahead.
        case allowed
        /// No token at all: 401.
        case unauthorized(String)
        /// A wrong token, Host or Origin: 403.
        case forbidden(String)
    }

    /// The request's parts the checks look at.
    public struct RequestParts: Sendable {
        /// The HTTP method, upper case.
        public var method: String
        /// The path, without the query.
        public var path: String
        /// The `token` query parameter.
        public var queryToken: String?
        /// The `Authorization` header.
        public var authorization: String?
        /// The `Host` header (or HTTP/2 authority).
        public var host: String?
        /// The `Origin` header.
        public var origin: String?
        /// The `Sec-Fetch-Site` header.
        public var fetchSite: String?

        /// Parts of a request.
        public init(
            method: String, path: String, queryToken: String? = nil, authorization: String? = nil,
            host: String? = nil, origin: String? = nil, fetchSite: String? = nil
        ) {
            self.method = method
            self.path = path
            self.queryToken = queryToken
            self.authorization = authorization
            self.host = host
            self.origin = origin
            self.fetchSite = fetchSite
        }
    }

    /// The secret.
    public let token: String
    /// The host the server is bound to, as written in a URL (`127.0.0.1`, `[::1]`).
    public let boundHost: String

    /// Checks against `token`, for a server bound to `boundHost`.
    public init(token: String, boundHost: String) {
        self.token = token
        self.boundHost = boundHost
    }

    /// 256 random bits from the system's secure generator, as 64 hex digits.
    public static func makeToken() -> String {
        var generator = SystemRandomNumberGenerator()
        var text = ""
        for _ in 0..<4 {
            let word = generator.next() as UInt64
            let hex = String(word, radix: 16)
            text += String(repeating: "0", count: 16 - hex.count) + hex
        }
        return text
    }

    /// The Host values accepted when the server listens on `port`.
    public func allowedHosts(port: Int) -> Set<String> {
        var hosts: Set<String> = ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)", "\(boundHost):\(port)"]
        if port == 80 { hosts.formUnion(["127.0.0.1", "localhost", "[::1]", boundHost]) }
        return hosts
    }

    /// The decision for `request` to a server listening on `port`.
    public func check(_ request: RequestParts, port: Int) -> Verdict {
        guard let host = request.host?.lowercased(), allowedHosts(port: port).contains(host) else {
            return .forbidden("this address is not the studio's (Host must be 127.0.0.1:\(port) or localhost:\(port))")
        }
        let stateChanging = !["GET", "HEAD"].contains(request.method)
        let isStream = request.path == "/api/events"
        if stateChanging || isStream {
            if let origin = request.origin, origin != "http://\(host)" {
                return .forbidden("requests from another origin are refused")
            }
            if request.fetchSite == "cross-site" { return .forbidden("requests from another site are refused") }
        }
        var given: String?
        if let authorization = request.authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { given = String(parts[1]) }
        }
        if given == nil, let queryToken = request.queryToken { given = queryToken }
        if given == nil, request.path.hasPrefix("/s/") {
            given = request.path.dropFirst(3).split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
                .first.map(String.init)
        }
        guard let given, !given.isEmpty else {
            return .unauthorized("a token is required: open the address udp studio printed")
        }
        guard Self.equalInConstantTime(given, token) else { return .forbidden("wrong token") }
        return .allowed
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess was right.
    static func equalInConstantTime(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}
