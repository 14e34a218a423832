// The start-up anchor: the smallest Swift program that loads Foundation, as a command-line tool written in
// Swift would. benchmarks/run compiles it with `swiftc -O` and times it next to `udp`.
import Foundation

FileHandle.standardOutput.write("hello\n".data(using: .utf8)!)
