#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Text encodings for payloads.
///
/// The raw value is the canonical name (`utf8`, `gb18030`, `gbk`, `shift-jis`, `latin1`), which is also what
/// ``init(name:)`` accepts and what error messages show. utf8 and latin1 are converted in Swift; gb18030, gbk and
/// shift-jis use the system iconv (glibc on Linux, libiconv on macOS).
public enum TextEncoding: String, CaseIterable, Sendable {
    /// UTF-8.
    case utf8
    /// GB 18030 (Chinese; a superset of GBK that can encode every Unicode character).
    case gb18030
    /// GBK (Chinese, Microsoft code page 936: GB 2312 plus extensions, with 0x80 as "€").
    case gbk
    /// Shift_JIS (Japanese) in the Microsoft variant (code page 932 / Windows-31J) that everyone actually sends: bytes
    /// 0x00-0x7F are plain ASCII (0x5C is "\", not "¥"), and NEC/IBM extensions such as "①" are included. Falls back to
    /// the system's plain SHIFT_JIS only where CP932 is unavailable.
    case shiftJIS = "shift-jis"
    /// ISO 8859-1: every byte 0x00-0xFF is the Unicode scalar U+0000-00FF of the same value.
    case latin1

    /// Looks an encoding up by name, case-insensitively (surrounding whitespace is not trimmed).
    ///
    /// Accepted names: `utf-8`, `utf8` (-> ``utf8``); `gb18030`; `gbk`, `gb2312`, `cp936` (-> ``gbk``); `shift-jis`,
    /// `shift_jis`, `sjis`, `shiftjis`, `cp932` (-> ``shiftJIS``); `latin1`, `latin-1`, `iso-8859-1`, `iso8859-1`
    /// (-> ``latin1``). `gb2312` maps to gbk, which is a superset of it.
    ///
    /// - Throws: ``PayloadError/unknownEncoding(_:)`` with the name as given for anything else.
    public init(name: String) throws(PayloadError) {
        switch name.lowercased() {
        case "utf8", "utf-8": self = .utf8
        case "gb18030": self = .gb18030
        case "gbk", "gb2312", "cp936": self = .gbk
        case "shift-jis", "shift_jis", "sjis", "shiftjis", "cp932": self = .shiftJIS
        case "latin1", "latin-1", "iso-8859-1", "iso8859-1": self = .latin1
        default: throw .unknownEncoding(name)
        }
    }

    /// Encodes text into bytes in this encoding.
    ///
    /// utf8 and gb18030 can encode every string. Empty text gives `[]`. Text that is pure ASCII encodes to the same
    /// bytes in every encoding.
    ///
    /// - Throws: ``PayloadError/unencodable(_:encoding:)`` naming the first character (a whole `Character`, e.g. "😀"
    ///   or "e" + U+0301) that this encoding cannot represent, such as an emoji in gbk or shift-jis, or anything above
    ///   U+00FF in latin1.
    public func encode(_ text: String) throws(PayloadError) -> [UInt8] {
        switch self {
        case .utf8:
            return Array(text.utf8)
        case .latin1:
            return try Self.encodeLatin1(text)
        case .gb18030, .gbk, .shiftJIS:
            if Self.isASCII(text.utf8) { return Array(text.utf8) }
            var utf8 = text
            let result = utf8.withUTF8 { PayloadIconv.encode($0, to: iconvNames) }
            switch result {
            case .success(let bytes):
                return bytes
            case .failure(let rejected):
                throw .unencodable(
                    PayloadError.character(in: text, atUTF8Offset: rejected.utf8Offset), encoding: self)
            }
        }
    }

    /// Decodes bytes in this encoding. Never fails and never drops or replaces anything.
    ///
    /// Bytes that are not valid in the encoding become ``DecodedText/Segment/invalid(_:)`` segments, one per maximal run
    /// of such bytes; the valid parts become ``DecodedText/Segment/text(_:)`` segments, one per maximal run. Empty input
    /// gives no segments (and ``DecodedText/string`` `""`). Examples: utf8 `[0x41, 0xff, 0xfe, 0x42]` is text "A",
    /// invalid `[ff fe]`, text "B"; a multi-byte sequence cut off at the end is an invalid run at the end. In latin1
    /// every byte is valid.
    ///
    /// Valid UTF-8 and pure-ASCII input (in any encoding) take a fast path that makes the `String` and one segment and
    /// nothing else.
    public func decode<C: Collection>(_ bytes: C) -> DecodedText where C.Element == UInt8 {
        if let decoded = bytes.withContiguousStorageIfAvailable({ decodeContiguous($0) }) {
            return decoded
        }
        return Array(bytes).withUnsafeBufferPointer { decodeContiguous($0) }
    }

    // MARK: - Implementation

    /// iconv names to try, in order.
    private var iconvNames: [String] {
        switch self {
        case .gb18030: return ["GB18030"]
        case .gbk: return ["GBK", "CP936"]
        case .shiftJIS: return ["CP932", "WINDOWS-31J", "SHIFT_JIS", "SJIS"]
        case .utf8, .latin1: return []
        }
    }

    private func decodeContiguous(_ bytes: UnsafeBufferPointer<UInt8>) -> DecodedText {
        guard !bytes.isEmpty else { return DecodedText(segments: []) }
        switch self {
        case .utf8:
            return DecodedText(segments: Self.decodeUTF8(bytes))
        case .latin1:
            return DecodedText(segments: [.text(Self.decodeLatin1(bytes))])
        case .gb18030, .gbk, .shiftJIS:
            if Self.isASCII(bytes) {
                return DecodedText(segments: [.text(String(decoding: bytes, as: UTF8.self))])
            }
            return DecodedText(segments: PayloadIconv.decode(bytes, from: iconvNames))
        }
    }

    @inline(__always)
    private static func isASCII<S: Sequence>(_ bytes: S) -> Bool where S.Element == UInt8 {
        for byte in bytes where byte >= 0x80 { return false }
        return true
    }

    private static func decodeUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> [DecodedText.Segment] {
        // Fast path: String(decoding:) validates and repairs; if the result has exactly the input bytes, nothing was
        // repaired (a repair always puts U+FFFD where the input had an invalid sequence).
        var string = String(decoding: bytes, as: UTF8.self)
        let unchanged = string.withUTF8 { utf8 in
            utf8.count == bytes.count && memcmp(utf8.baseAddress!, bytes.baseAddress!, bytes.count) == 0
        }
        if unchanged {
            return [.text(string)]
        }

        // Slow path: split into maximal valid and invalid runs. Invalid sequences are found with the standard maximal
        // subpart rule (as for U+FFFD repair), and adjacent ones are merged.
        var segments: [DecodedText.Segment] = []
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var position = 0
        var textStart: Int?
        var invalidStart: Int?
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                if let start = invalidStart {
                    segments.append(.invalid(Array(bytes[start..<position])))
                    invalidStart = nil
                }
                if textStart == nil { textStart = position }
                position += encoded.count
            case .error(let length):
                if let start = textStart {
                    segments.append(
                        .text(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)))
                    textStart = nil
                }
                if invalidStart == nil { invalidStart = position }
                position += length
            case .emptyInput:
                if let start = textStart {
                    segments.append(
                        .text(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)))
                }
                if let start = invalidStart {
                    segments.append(.invalid(Array(bytes[start..<position])))
                }
                return segments
            }
        }
    }

    private static func decodeLatin1(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if isASCII(bytes) { return String(decoding: bytes, as: UTF8.self) }
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            var count = 0
            for byte in bytes {
                if byte < 0x80 {
                    out[count] = byte
                    count += 1
                } else {
                    out[count] = 0xC0 | byte >> 6
                    out[count + 1] = 0x80 | byte & 0x3F
                    count += 2
                }
            }
            return count
        }
    }

    private static func encodeLatin1(_ text: String) throws(PayloadError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        let scalars = text.unicodeScalars
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let value = scalars[index].value
            guard value <= 0xFF else {
                let offset = text.utf8.distance(from: text.utf8.startIndex, to: index)
                throw .unencodable(PayloadError.character(in: text, atUTF8Offset: offset), encoding: .latin1)
            }
            out.append(UInt8(truncatingIfNeeded: value))
            index = scalars.index(after: index)
        }
        return out
    }
}

/// The result of decoding bytes: text runs and runs of bytes that were not valid in the encoding, in input order.
public struct DecodedText: Equatable, Sendable {
    /// One run of the decoded input.
    public enum Segment: Equatable, Sendable {
        /// Bytes that decoded to this text (never empty when produced by ``TextEncoding/decode(_:)``).
        case text(String)
        /// Bytes that are not valid in the encoding, exactly as received (never empty when produced by
        /// ``TextEncoding/decode(_:)``).
        case invalid([UInt8])
    }

    /// The runs, in input order. ``TextEncoding/decode(_:)`` never puts two segments of the same kind next to each other;
    /// empty input has no segments.
    public var segments: [Segment]

    /// Makes a decoded text from segments as given (no merging or validation).
    public init(segments: [Segment]) {
        self.segments = segments
    }

    /// `true` when every byte decoded, i.e. there is no ``Segment/invalid(_:)`` segment (also `true` for empty input).
    public var isValid: Bool {
        for segment in segments {
            if case .invalid = segment { return false }
        }
        return true
    }

    /// The text when every byte decoded (`""` for empty input), else `nil`.
    public var string: String? {
        if segments.count == 1, case .text(let text) = segments[0] { return text }
        var result = ""
        for segment in segments {
            switch segment {
            case .text(let text): result += text
            case .invalid: return nil
            }
        }
        return result
    }

    /// Terminal-safe, single-line rendering: text segments through ``TerminalText/escape(_:)`` and each invalid byte as
    /// `\xNN` (lower-case hex). Because `escape` turns backslashes into `\\`, an invalid byte cannot be confused with
    /// text that happens to contain "\xNN".
    public var escaped: String {
        var out = ""
        for segment in segments {
            switch segment {
            case .text(let text):
                out += TerminalText.escape(text)
            case .invalid(let bytes):
                out.reserveCapacity(out.utf8.count + bytes.count * 4)
                for byte in bytes {
                    out += "\\x"
                    out += Hex.encode(CollectionOfOne(byte))
                }
            }
        }
        return out
    }
}

// MARK: - iconv

/// Minimal iconv wrapper. A conversion descriptor is opened per call and closed before returning (`iconv_t` is not
/// `Sendable`, and opening is cheap after the first use).
private enum PayloadIconv {
    /// The UTF-8 offset of the first character iconv could not convert.
    struct Rejected: Error {
        var utf8Offset: Int
    }

    /// Encodes valid UTF-8 into the first available of `names`.
    /// When iconv cannot convert at all, the first non-ASCII character is reported as unencodable.
    static func encode(_ utf8: UnsafeBufferPointer<UInt8>, to names: [String]) -> Result<[UInt8], Rejected> {
        guard let descriptor = open(to: names, from: ["UTF-8"]) else {
            return .failure(Rejected(utf8Offset: utf8.firstIndex { $0 >= 0x80 } ?? 0))
        }
        defer { descriptor.close() }
        var output = OutputBuffer(capacity: utf8.count * 2 + 16)
        defer { output.deallocate() }
        if let rejected = descriptor.convert(utf8, from: 0, into: &output) {
            return .failure(Rejected(utf8Offset: rejected))
        }
        return .success(Array(output.bytes))
    }

    /// Decodes from the first available of `names` into segments. Each byte iconv rejects (EILSEQ, or EINVAL for a
    /// truncated sequence at the end) becomes invalid and conversion resumes at the next byte. When iconv cannot convert
    /// at all, ASCII bytes are text and all other bytes are invalid.
    static func decode(_ input: UnsafeBufferPointer<UInt8>, from names: [String]) -> [DecodedText.Segment] {
        var segments: [DecodedText.Segment] = []
        var invalid: [UInt8] = []

        guard let descriptor = open(to: ["UTF-8"], from: names) else {
            var textStart = 0
            for (index, byte) in input.enumerated() where byte >= 0x80 {
                if textStart < index {
                    if !invalid.isEmpty {
                        segments.append(.invalid(invalid))
                        invalid = []
                    }
                    segments.append(
                        .text(String(decoding: UnsafeBufferPointer(rebasing: input[textStart..<index]), as: UTF8.self)))
                }
                invalid.append(byte)
                textStart = index + 1
            }
            if !invalid.isEmpty { segments.append(.invalid(invalid)) }
            if textStart < input.count {
                segments.append(
                    .text(String(decoding: UnsafeBufferPointer(rebasing: input[textStart...]), as: UTF8.self)))
            }
            return segments
        }
        defer { descriptor.close() }

        // Enough for every supported encoding (worst case: 1-byte half-width katakana -> 3 UTF-8 bytes); grown on E2BIG.
        var output = OutputBuffer(capacity: input.count * 3 + 16)
        defer { output.deallocate() }
        var start = 0
        while start < input.count {
            output.count = 0
            let rejected = descriptor.convert(input, from: start, into: &output)
            if output.count > 0 {
                if !invalid.isEmpty {
                    segments.append(.invalid(invalid))
                    invalid = []
                }
                segments.append(.text(String(decoding: output.bytes, as: UTF8.self)))
            }
            guard let rejected else { break }
            invalid.append(input[rejected])
            start = rejected + 1
            descriptor.reset()
        }
        if !invalid.isEmpty {
            segments.append(.invalid(invalid))
        }
        return segments
    }

    private static func open(to: [String], from: [String]) -> Descriptor? {
        for toName in to {
            for fromName in from {
                if let descriptor = Descriptor(to: toName, from: fromName) { return descriptor }
            }
        }
        return nil
    }

    /// A growable raw output buffer.
    struct OutputBuffer {
        var base: UnsafeMutablePointer<UInt8>
        var capacity: Int
        var count = 0

        init(capacity: Int) {
            self.capacity = max(capacity, 16)
            self.base = .allocate(capacity: self.capacity)
        }

        var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

        mutating func grow() {
            let newCapacity = capacity * 2
            let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
            newBase.update(from: base, count: count)
            base.deallocate()
            base = newBase
            capacity = newCapacity
        }

        func deallocate() { base.deallocate() }
    }

    /// An open iconv conversion descriptor.
    struct Descriptor {
        let handle: UnsafeMutableRawPointer
        let api: IconvAPI

        init?(to: String, from: String) {
            guard let api = IconvAPI.shared,
                let handle = api.open(to, from),
                handle != UnsafeMutableRawPointer(bitPattern: -1)
            else { return nil }
            self.handle = handle
            self.api = api
        }

        func close() { _ = api.close(handle) }

        /// Returns the conversion state to the initial state (after an error).
        func reset() { _ = api.convert(handle, nil, nil, nil, nil) }

        /// Converts `input[start...]`, appending to `output` (grown as needed). Returns `nil` when everything was
        /// converted, else the offset in `input` of the first byte iconv rejected; output for the bytes before it has
        /// been appended.
        func convert(_ input: UnsafeBufferPointer<UInt8>, from start: Int, into output: inout OutputBuffer) -> Int? {
            guard start < input.count, let base = input.baseAddress else { return nil }
            var inPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(mutating: base + start)
                .assumingMemoryBound(to: CChar.self)
            var inLeft = input.count - start
            while true {
                var outPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(output.base + output.count)
                    .assumingMemoryBound(to: CChar.self)
                let outStart = output.capacity - output.count
                var outLeft = outStart
                let result = api.convert(handle, &inPointer, &inLeft, &outPointer, &outLeft)
                let error = errno
                output.count += outStart - outLeft
                if result != -1 { return nil }
                if error == E2BIG {
                    output.grow()
                    continue
                }
                // EILSEQ (invalid or unconvertible), EINVAL (truncated at the end), or anything unexpected.
                return input.count - inLeft
            }
        }
    }
}

/// The three iconv functions, called through C function pointers: directly from the C library on Linux, loaded from
/// the system libiconv at run time on macOS (where linking it would need a linker flag in every client package).
private struct IconvAPI: @unchecked Sendable {  // immutable C function pointers
    typealias Open = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> UnsafeMutableRawPointer?
    typealias Convert =
        @convention(c) (
            UnsafeMutableRawPointer?,
            UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, UnsafeMutablePointer<Int>?,
            UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, UnsafeMutablePointer<Int>?
        ) -> Int
    typealias Close = @convention(c) (UnsafeMutableRawPointer?) -> Int32

    let open: Open
    let convert: Convert
    let close: Close

    /// `nil` when iconv is not available.
    static let shared: IconvAPI? = load()

    private static func load() -> IconvAPI? {
        #if canImport(Glibc) || canImport(Musl)
        return IconvAPI(
            open: { to, from in iconv_open(to, from) },
            convert: { handle, inBuffer, inLeft, outBuffer, outLeft in
                iconv(handle, inBuffer, inLeft, outBuffer, outLeft)
            },
            close: { handle in iconv_close(handle) })
        #elseif canImport(Darwin)
        for path in ["/usr/lib/libiconv.2.dylib", "/usr/lib/libiconv.dylib", "libiconv.2.dylib"] {
            guard let library = dlopen(path, RTLD_NOW | RTLD_LOCAL) else { continue }
            guard let open = dlsym(library, "iconv_open"),
                let convert = dlsym(library, "iconv"),
                let close = dlsym(library, "iconv_close")
            else {
                dlclose(library)
                continue
            }
            // The library stays loaded for the life of the process.
            return IconvAPI(
                open: unsafeBitCast(open, to: Open.self),
                convert: unsafeBitCast(convert, to: Convert.self),
                close: unsafeBitCast(close, to: Close.self))
        }
        return nil
        #else
        return nil
        #endif
    }
}
