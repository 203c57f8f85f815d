// A strict JSON parser (RFC 8259) for plugin configurations. AssemblyScript 0.14 has no JSON
// support, no exceptions and no closures: parse() returns null and sets `error` (with the character
// position, 1-based) on the first problem.

export enum Kind { Null, Bool, Number, String, Array, Object }

export class JsonValue {
  kind: Kind = Kind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  // Array elements, or object member values (names in `keys`, same order).
  items: Array<JsonValue> = new Array<JsonValue>();
  keys: Array<string> = new Array<string>();

  constructor(kind: Kind) {
    this.kind = kind;
  }
}

// A JSON type name for error messages.
export function kindName(kind: Kind): string {
  switch (kind) {
    case Kind.Null: return "null";
    case Kind.Bool: return "a boolean";
    case Kind.Number: return "a number";
    case Kind.String: return "a string";
    case Kind.Array: return "an array";
    default: return "an object";
  }
}

export class JsonParser {
  text: string;
  pos: i32 = 0;
  error: string = "";

  constructor(text: string) {
    this.text = text;
  }

  // The whole text as one value, or null (see `error`).
  parse(): JsonValue | null {
    this.skipSpace();
    const v = this.value();
    if (v === null) return null;
    this.skipSpace();
    if (this.pos < this.text.length) return this.fail("unexpected text after the JSON value");
    return v;
  }

  private fail(message: string): JsonValue | null {
    if (this.error.length == 0) {
      this.error = message + " at character " + (this.pos + 1).toString();
    }
    return null;
  }

  private peek(): i32 {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  private skipSpace(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.pos++;
    }
  }

  private value(): JsonValue | null {
    const c = this.peek();
    if (c == 0x7b) return this.object();
    if (c == 0x5b) return this.array();
    if (c == 0x22) {
      const s = this.string();
      if (s === null) return null;
      const v = new JsonValue(Kind.String);
      v.str = s;
      return v;
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.literal("true")) { const v = new JsonValue(Kind.Bool); v.bool = true; return v; }
    if (this.literal("false")) return new JsonValue(Kind.Bool);
    if (this.literal("null")) return new JsonValue(Kind.Null);
    if (c == -1) return this.fail("unexpected end of input");
    return this.fail("unexpected character '" + String.fromCharCode(c) + "'");
  }

  private literal(word: string): bool {
    if (this.text.substr(this.pos, word.length) == word) {
      this.pos += word.length;
      return true;
    }
    return false;
  }

  private digits(): i32 {
    const start = this.pos;
    while (this.peek() >= 0x30 && this.peek() <= 0x39) this.pos++;
    return this.pos - start;
  }

  private number(): JsonValue | null {
    const start = this.pos;
    if (this.peek() == 0x2d) this.pos++;
    if (this.peek() == 0x30) {
      this.pos++;
    } else if (this.digits() == 0) {
      return this.fail("a number needs digits");
    }
    if (this.peek() == 0x2e) {
      this.pos++;
      if (this.digits() == 0) return this.fail("a number needs digits after '.'");
    }
    if (this.peek() == 0x65 || this.peek() == 0x45) {
      this.pos++;
      if (this.peek() == 0x2b || this.peek() == 0x2d) this.pos++;
      if (this.digits() == 0) return this.fail("a number needs digits in its exponent");
    }
    const v = new JsonValue(Kind.Number);
    v.num = parseFloat(this.text.substring(start, this.pos));
    return v;
  }

  // A string token; the opening quote is at `pos`.
  private string(): string | null {
    this.pos++;
    let out = "";
    let run = this.pos;
    while (true) {
      const c = this.peek();
      if (c == -1) { this.fail("unterminated string"); return null; }
      if (c == 0x22) break;
      if (c < 0x20) { this.fail("control character in a string"); return null; }
      if (c != 0x5c) { this.pos++; continue; }
      out += this.text.substring(run, this.pos);
      this.pos++;
      const e = this.peek();
      this.pos++;
      if (e == 0x22) out += "\"";
      else if (e == 0x5c) out += "\\";
      else if (e == 0x2f) out += "/";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x6e) out += "\n";
      else if (e == 0x72) out += "\r";
      else if (e == 0x74) out += "\t";
      else if (e == 0x75) {
        const hex = this.text.substr(this.pos, 4);
        let code: i32 = 0;
        if (hex.length < 4) { this.fail("short \\u escape"); return null; }
        for (let i = 0; i < 4; i++) {
          const h = hex.charCodeAt(i);
          let d: i32 = -1;
          if (h >= 0x30 && h <= 0x39) d = h - 0x30;
          else if (h >= 0x61 && h <= 0x66) d = h - 0x61 + 10;
          else if (h >= 0x41 && h <= 0x46) d = h - 0x41 + 10;
          if (d < 0) { this.fail("bad \\u escape"); return null; }
          code = code * 16 + d;
        }
        this.pos += 4;
        out += String.fromCharCode(code);
      } else {
        this.pos--;
        this.fail("bad escape in a string");
        return null;
      }
      run = this.pos;
    }
    out += this.text.substring(run, this.pos);
    this.pos++;
    return out;
  }

  private array(): JsonValue | null {
    this.pos++;
    const v = new JsonValue(Kind.Array);
    this.skipSpace();
    if (this.peek() == 0x5d) { this.pos++; return v; }
    while (true) {
      this.skipSpace();
      const item = this.value();
      if (item === null) return null;
      v.items.push(item);
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c == 0x5d) return v;
      if (c != 0x2c) { this.pos--; return this.fail("expected ',' or ']' in an array"); }
    }
    return null; // unreachable; AssemblyScript wants a return here
  }

  private object(): JsonValue | null {
    this.pos++;
    const v = new JsonValue(Kind.Object);
    this.skipSpace();
    if (this.peek() == 0x7d) { this.pos++; return v; }
    while (true) {
      this.skipSpace();
      if (this.peek() != 0x22) return this.fail("expected a member name in quotes");
      const key = this.string();
      if (key === null) return null;
      if (v.keys.includes(key)) {
        return this.fail("duplicate member \"" + key + "\"");
      }
      this.skipSpace();
      if (this.peek() != 0x3a) return this.fail("expected ':' after a member name");
      this.pos++;
      this.skipSpace();
      const item = this.value();
      if (item === null) return null;
      v.keys.push(key);
      v.items.push(item);
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c == 0x7d) return v;
      if (c != 0x2c) { this.pos--; return this.fail("expected ',' or '}' in an object"); }
    }
    return null; // unreachable
  }
}
