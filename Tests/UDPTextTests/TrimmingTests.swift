import Foundation
import UDPText
import XCTest

/// Trimming spaces and tabs gives what Foundation's `trimmingCharacters(in: .whitespaces)` gives, which the
/// command line's parsing of durations, sizes and chat commands relied on.
final class TrimmingTests: XCTestCase {
    func testMatchesFoundationsWhitespaceTrimming() {
        let samples = [
            "", " ", "\t", "  \t ", "5ms", " 5 ms ", "\t/quit\t", "/quit\n", "\n/quit", " a b ", "\u{A0}x\u{A0}",
            "\u{3000}全角\u{3000}", "\u{2003}em\u{2009}", "\r\nline\r\n", " \u{301}combining", "tail\u{301} ",
            "\u{200B}zero width\u{200B}", "é ", "  👍  ", "x\u{85}",
        ]
        for sample in samples {
            XCTAssertEqual(
                sample.trimmingHorizontalWhitespace(), sample.trimmingCharacters(in: .whitespaces),
                "\(sample.debugDescription)")
            let substring = ("[" + sample + "]").dropFirst().dropLast()
            XCTAssertEqual(
                substring.trimmingHorizontalWhitespace(), substring.trimmingCharacters(in: .whitespaces),
                "substring \(sample.debugDescription)")
        }
    }

    /// Scalar by scalar, through the range every space separator lies in (and the byte-order mark), each is trimmed
    /// exactly when Foundation trims it.
    func testTrimsTheSameScalarsAsFoundation() {
        for value in Array(0..<0x3100) + [0xFEFF] {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let sample = "\(Character(scalar))a\(Character(scalar))"
            XCTAssertEqual(
                sample.trimmingHorizontalWhitespace(), sample.trimmingCharacters(in: .whitespaces),
                "U+\(String(value, radix: 16))")
        }
    }

    func testKeepsLineBreaksAndInnerSpaces() {
        XCTAssertEqual(" 10 s\n".trimmingHorizontalWhitespace(), "10 s\n")
        XCTAssertEqual("\t a \t b \t".trimmingHorizontalWhitespace(), "a \t b")
        XCTAssertEqual(" \t ".trimmingHorizontalWhitespace(), "")
    }
}
