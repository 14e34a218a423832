// Byte helpers: hex in and out, escaped text, and a hexdump -C style dump. Payloads from the network are only
// ever turned into strings here and shown with textContent, never parsed as HTML.

export function toHex(bytes) {
  let out = [];
  for (const b of bytes) out.push(b.toString(16).padStart(2, "0"));
  return out.join(" ");
}

export function hexToBytes(hex) {
  if (!hex) return new Uint8Array(0);
  const pairs = hex.match(/../g) || [];
  return new Uint8Array(pairs.map((p) => parseInt(p, 16)));
}

// Hex as people type it: spaces, colons, commas, 0x prefixes. Throws a one-line message on anything else.
export function parseHex(text) {
  const cleaned = text.replace(/0x/gi, "").replace(/[\s:,-]/g, "");
  if (/[^0-9a-fA-F]/.test(cleaned)) {
    const bad = cleaned.match(/[^0-9a-fA-F]/)[0];
    throw new Error(`'${bad}' is not a hex digit`);
  }
  if (cleaned.length % 2) throw new Error("odd number of hex digits");
  const out = new Uint8Array(cleaned.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(cleaned.substr(i * 2, 2), 16);
  return out;
}

const named = { 0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 27: "\\e" };
const bidi = new Set([0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]);

// Control characters, escape sequences and bidi controls as visible escapes (the same as the terminal commands).
export function escapeText(text) {
  let out = "";
  for (const ch of text) {
    const c = ch.codePointAt(0);
    if (ch === "\\") out += "\\\\";
    else if (c < 0x20) out += named[c] || "\\x" + c.toString(16).padStart(2, "0");
    else if (c === 0x7f) out += "\\x7f";
    else if ((c >= 0x80 && c <= 0x9f) || bidi.has(c)) out += "\\u{" + c.toString(16) + "}";
    else if (c === 0xfffd) out += "\\ufffd";
    else out += ch;
  }
  return out;
}

const labels = { utf8: "utf-8", gb18030: "gb18030", gbk: "gbk", "shift-jis": "shift_jis", latin1: "windows-1252" };

export function decode(bytes, encoding = "utf8") {
  try {
    return new TextDecoder(labels[encoding] || "utf-8").decode(bytes);
  } catch {
    return new TextDecoder("utf-8").decode(bytes);
  }
}

// Text (UTF-8) with optional backslash escapes: \n \t \r \0 \\ \xNN \u{NNNN}.
export function encodeText(text, escapes) {
  const enc = new TextEncoder();
  if (!escapes) return enc.encode(text);
  const out = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch !== "\\") {
      const cp = text.codePointAt(i);
      if (cp > 0xffff) i++;
      out.push(...enc.encode(String.fromCodePoint(cp)));
      continue;
    }
    const n = text[++i];
    const simple = { n: 10, t: 9, r: 13, 0: 0, "\\": 92, a: 7, b: 8, f: 12, v: 11, e: 27 };
    if (n in simple) out.push(simple[n]);
    else if (n === "x" && /^[0-9a-fA-F]{2}$/.test(text.substr(i + 1, 2))) {
      out.push(parseInt(text.substr(i + 1, 2), 16));
      i += 2;
    } else if (n === "u" && text[i + 1] === "{") {
      const close = text.indexOf("}", i);
      const cp = parseInt(text.slice(i + 2, close), 16);
      if (close < 0 || isNaN(cp)) throw new Error("bad \\u{...} escape");
      out.push(...enc.encode(String.fromCodePoint(cp)));
      i = close;
    } else {
      throw new Error(`unknown escape \\${n === undefined ? "" : n}`);
    }
  }
  return new Uint8Array(out);
}

export function hexDump(bytes) {
  const lines = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const chunk = bytes.slice(off, off + 16);
    let hex = "";
    for (let i = 0; i < 16; i++) {
      hex += i < chunk.length ? chunk[i].toString(16).padStart(2, "0") + " " : "   ";
      if (i === 7) hex += " ";
    }
    let ascii = "";
    for (const b of chunk) ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
    lines.push(off.toString(16).padStart(8, "0") + "  " + hex + " |" + ascii + "|");
  }
  return lines.join("\n");
}
