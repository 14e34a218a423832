import Foundation
import UDPKit
import UDPText
import XCTest

final class ChecksumTests: XCTestCase {
    private let check = Array("123456789".utf8)

    func testCatalogueCheckValues() throws {
        // The check values of the CRC catalogue (CRC of the ASCII string "123456789").
        let expected: [(String, UInt32)] = [
            ("sum8", 0xDD), ("xor8", 0x31), ("crc8", 0xF4), ("crc16-modbus", 0x4B37),
            ("crc16-ccitt", 0x29B1), ("crc16-xmodem", 0x31C3), ("crc32", 0xCBF4_3926),
        ]
        for (name, value) in expected {
            XCTAssertEqual(try Checksum(parsing: name).value(of: check), value, name)
        }
    }

    func testModbusIsAppendedLowByteFirst() throws {
        let frame: [UInt8] = [0x01, 0x03, 0x00, 0x00, 0x00, 0x01]
        XCTAssertEqual(try Checksum(parsing: "crc16-modbus").appended(to: frame), frame + [0x84, 0x0A])
        XCTAssertEqual(try Checksum(parsing: "crc16-modbus:be").suffix(for: frame), [0x0A, 0x84])
    }

    func testCRC32IsBigEndianUnlessToldOtherwise() throws {
        XCTAssertEqual(try Checksum(parsing: "crc32").suffix(for: check), [0xCB, 0xF4, 0x39, 0x26])
        XCTAssertEqual(try Checksum(parsing: "CRC32:le").suffix(for: check), [0x26, 0x39, 0xF4, 0xCB])
        XCTAssertEqual(try Checksum(parsing: "crc16-ccitt").suffix(for: check), [0x29, 0xB1])
        XCTAssertEqual(try Checksum(parsing: "crc16-xmodem:le").suffix(for: check), [0xC3, 0x31])
        XCTAssertEqual(try Checksum(parsing: "crc32:le").description, "crc32:le")
    }

    func testEmptyInputAndBadNames() throws {
        XCTAssertEqual(try Checksum(parsing: "sum8").suffix(for: []), [0])
        XCTAssertEqual(try Checksum(parsing: "crc32").suffix(for: []), [0, 0, 0, 0])
        XCTAssertThrowsError(try Checksum(parsing: "md5")) { error in
            XCTAssertEqual(error as? ChecksumError, .unknown("md5"))
            XCTAssertTrue("\(error)".contains("crc16-modbus"), "\(error)")
        }
        XCTAssertThrowsError(try Checksum(parsing: "crc32:middle"))
        XCTAssertThrowsError(try Checksum(parsing: "xor8:le")) { XCTAssertTrue("\($0)".contains("one byte")) }
    }
}

final class SendTemplateTests: XCTestCase {
    func testCounterHexAndBraces() throws {
        let template = try SendTemplate("#{counter} {hex:00 ff}{{x}}")
        XCTAssertFalse(template.isConstant)
        XCTAssertEqual(template.render(counter: 1), Array("#1 ".utf8) + [0x00, 0xFF] + Array("{x}".utf8))
        XCTAssertEqual(template.render(counter: 42), Array("#42 ".utf8) + [0x00, 0xFF] + Array("{x}".utf8))
        XCTAssertTrue(try SendTemplate("{hex:01 02}ab").isConstant)
    }

    func testTimePlaceholders() throws {
        let now = Date(timeIntervalSince1970: 1_700_000_000.25)
        XCTAssertEqual(
            String(decoding: try SendTemplate("{unixtime}").render(counter: 1, now: now), as: UTF8.self), "1700000000")
        XCTAssertEqual(
            String(decoding: try SendTemplate("{time}").render(counter: 1, now: now), as: UTF8.self),
            "2023-11-14T22:13:20.250Z")
    }

    func testRandomBytesAreHexOfTheRightLength() throws {
        let template = try SendTemplate("{random:4}")
        let a = template.render(counter: 1)
        let b = template.render(counter: 2)
        XCTAssertEqual(a.count, 8)
        XCTAssertTrue(a.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        // 32 random bits twice: equal with probability 2^-32.
        XCTAssertNotEqual(a, b)
    }

    func testErrors() {
        for bad in ["{count}", "{random:0}", "{random:x}", "{hex:zz}", "{counter", "a}"] {
            XCTAssertThrowsError(try SendTemplate(bad), bad) { XCTAssertTrue($0 is TemplateError, "\(bad): \($0)") }
        }
        XCTAssertThrowsError(try SendTemplate("€{counter}", encoding: .latin1)) { XCTAssertTrue($0 is PayloadError) }
    }
}
