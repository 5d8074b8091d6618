// Decoding of pickle scalars: integers of any size, Python 2 str escapes,
// protocol 0 unicode, big-endian doubles.
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "core/format/pickle/unpickler_internal.h"

namespace weightd {
namespace pickle_internal {

// Drops redundant sign-extension bytes of a little-endian two's complement
// integer, as Python's minimal encoding has none.
static void TrimTwosComplement(std::string* le) {
  while (le->size() > 1) {
    uint8_t last = static_cast<uint8_t>(le->back());
    uint8_t prev = static_cast<uint8_t>((*le)[le->size() - 2]);
    if ((last == 0x00 && !(prev & 0x80)) || (last == 0xff && (prev & 0x80))) {
      le->pop_back();
    } else {
      break;
    }
  }
}

// LONG1 / LONG4 payload: little-endian two's complement.
ValuePtr IntFromTwosComplement(absl::string_view bytes) {
  if (bytes.empty()) return Value::Int(0);
  std::string le(bytes);
  TrimTwosComplement(&le);
  if (le.size() <= 8) {
    uint64_t u = 0;
    for (size_t i = 0; i < le.size(); ++i) u |= uint64_t{static_cast<uint8_t>(le[i])} << (8 * i);
    if (le.size() < 8 && (static_cast<uint8_t>(le.back()) & 0x80)) {
      u |= ~uint64_t{0} << (8 * le.size());  // sign-extend
    }
    return Value::Int(static_cast<int64_t>(u));
  }
  return Value::BigInt(std::move(le));
}

// Protocol 0 INT/LONG text ("123", "-5", "123L") of any size.
ValuePtr IntFromDecimal(absl::string_view digits, bool negative) {
  std::string mag;  // little-endian magnitude, base 256
  for (char c : digits) {
    unsigned carry = static_cast<unsigned>(c - '0');
    for (char& byte : mag) {
      unsigned v = static_cast<uint8_t>(byte) * 10u + carry;
      byte = static_cast<char>(v & 0xff);
      carry = v >> 8;
    }
    while (carry) {
      mag.push_back(static_cast<char>(carry & 0xff));
      carry >>= 8;
    }
  }
  mag.push_back('\0');  // room for the sign bit
  if (negative) {
    unsigned carry = 1;
    for (char& byte : mag) {
      unsigned v = static_cast<uint8_t>(~static_cast<uint8_t>(byte)) + carry;
      byte = static_cast<char>(v & 0xff);
      carry = v >> 8;
    }
  }
  return IntFromTwosComplement(mag);
}

// codecs.escape_decode, which Python applies to the quoted STRING argument.
std::string EscapeDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out.push_back(s[i]);
      continue;
    }
    char c = s[++i];
    switch (c) {
      case '\n': break;
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case 'x': {
        int v = 0, n = 0;
        while (n < 2 && i + 1 < s.size() && absl::ascii_isxdigit(s[i + 1])) {
          char h = s[++i];
          v = v * 16 + (absl::ascii_isdigit(h) ? h - '0' : absl::ascii_tolower(h) - 'a' + 10);
          ++n;
        }
        out.push_back(static_cast<char>(v));
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          int v = c - '0', n = 1;
          while (n < 3 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7') {
            v = v * 8 + (s[++i] - '0');
            ++n;
          }
          out.push_back(static_cast<char>(v & 0xff));
        } else {
          out.push_back('\\');
          out.push_back(c);
        }
    }
  }
  return out;
}

static void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// The raw-unicode-escape codec of protocol 0's UNICODE opcode: \uXXXX and
// \UXXXXXXXX escapes, every other byte is a latin-1 code point. Returns
// false on a code point beyond U+10FFFF.
bool RawUnicodeEscapeToUtf8(absl::string_view s, std::string* out) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
      size_t n = s[i + 1] == 'u' ? 4 : 8;
      uint32_t cp = 0;
      bool ok = i + 2 + n <= s.size();
      for (size_t k = 0; ok && k < n; ++k) {
        char h = s[i + 2 + k];
        if (!absl::ascii_isxdigit(h)) ok = false;
        cp = cp * 16 + (absl::ascii_isdigit(h) ? h - '0' : absl::ascii_tolower(h) - 'a' + 10);
      }
      if (ok) {
        if (cp > 0x10ffff) return false;
        AppendUtf8(cp, out);
        i += 1 + n;
        continue;
      }
    }
    AppendUtf8(static_cast<uint8_t>(s[i]), out);
  }
  return true;
}

double BigEndianDouble(absl::string_view b) {
  uint64_t u = 0;
  for (char c : b) u = (u << 8) | static_cast<uint8_t>(c);
  double d;
  std::memcpy(&d, &u, sizeof(d));
  return d;
}

}  // namespace pickle_internal
}  // namespace weightd
