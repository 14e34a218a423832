/// The syntax shared by reply templates (`udp echo --reply`, rules) and send templates (`udp send --template`):
/// literal text with `{name}` or `{name:argument}` placeholders; `{{` and `}}` are literal braces.
public enum TemplateSyntax {
    /// One piece of a template.
    public enum Token: Sendable, Equatable {
        /// Text to encode as it is.
        case literal(String)
        /// `{name}` or `{name:argument}`: the text between the braces.
        case placeholder(String)
    }

    /// Splits `template` into literal text and placeholders. `kind` names the template in errors ("reply", "send").
    /// - Throws: `TemplateError` for an unmatched `}` or an unclosed `{`.
    public static func tokens(_ template: String, kind: String) throws(TemplateError) -> [Token] {
        var tokens: [Token] = []
        var literal = ""
        var index = template.startIndex
        while index < template.endIndex {
            let c = template[index]
            let next = template.index(after: index)
            if c == "{", next < template.endIndex, template[next] == "{" {
                literal.append("{")
                index = template.index(after: next)
                continue
            }
            if c == "}", next < template.endIndex, template[next] == "}" {
                literal.append("}")
                index = template.index(after: next)
                continue
            }
            if c == "}" {
                throw TemplateError(message: "unmatched '}' in \(kind) template (write }} for a literal brace)")
            }
            if c == "{" {
                guard let close = template[next...].firstIndex(of: "}") else {
                    throw TemplateError(message: "unclosed '{' in \(kind) template (write {{ for a literal brace)")
                }
                if !literal.isEmpty { tokens.append(.literal(literal)) }
                literal = ""
                tokens.append(.placeholder(String(template[next..<close])))
                index = template.index(after: close)
                continue
            }
            literal.append(c)
            index = next
        }
        if !literal.isEmpty { tokens.append(.literal(literal)) }
        return tokens
    }
}

/// A malformed template.
public struct TemplateError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, in one line.
    public var message: String
    /// A template error with this message.
    public init(message: String) { self.message = message }
    public var description: String { message }
}
