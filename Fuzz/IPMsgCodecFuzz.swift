// libFuzzer entry point for the IP Messenger codec. Not part of the package: it is compiled together
// with Sources/IPMsg/Codec into one module, see Fuzz/run-ipmsg.sh.

/// Decodes arbitrary bytes as a packet, its file entries and a file request. Whatever decodes must encode
/// and decode again to an equal value (the decoder is lenient, so bytes may differ: a missing final NUL is
/// added, leading zeros go); nothing may trap. Any violation traps, which libFuzzer reports as a crash with
/// the input saved.
@_cdecl("LLVMFuzzerTestOneInput")
public func ipmsgCodecFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []

    if let packet = try? IPMsgPacket.decode(bytes) {
        _ = IPMsgVersion(packet.version).label
        _ = packet.acknowledgedNumber
        _ = packet.declaredEncoding
        do {
            let encoded = try packet.encode()
            guard encoded.count <= IPMsgPacket.maximumSize else { fatalError("encoded packet over the size limit") }
            guard (try? IPMsgPacket.decode(encoded)) == packet else {
                fatalError("packet does not decode to itself: \(packet)")
            }
        } catch .tooLarge {
            // Only inputs near the limit may grow past it (the final NUL).
            guard bytes.count >= IPMsgPacket.maximumSize - 1 else { fatalError("small packet refused as too large") }
        } catch {
            fatalError("decoded packet cannot be encoded: \(error)")
        }
        for field in packet.extensions {
            let entries = IPMsgFileEntry.decode(field)
            if !entries.isEmpty {
                guard let encoded = try? IPMsgFileEntry.encode(entries), IPMsgFileEntry.decode(encoded) == entries else {
                    fatalError("file entries do not round-trip: \(entries)")
                }
                for entry in entries { _ = IPMsgFileName.problem(String(decoding: entry.name, as: UTF8.self)) }
            }
        }
        if let request = IPMsgFileRequest(extra: packet.extra), IPMsgFileRequest(extra: request.extra) != request {
            fatalError("file request does not round-trip: \(request)")
        }
    }
    return 0
}
