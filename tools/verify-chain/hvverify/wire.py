"""The canonical encoding (docs/protocol.md, "Encoding"): a strict reader and the few
encoders the signed messages need.

u8 is one raw byte; u16, u32 and u64 are unsigned LEB128 varints of at most 3, 5 and 10
bytes, minimal (no over-long form), within the type's range; bool and option tags are one
byte, 0 or 1; sequences, strings and byte strings carry a varint length; enums a varint
variant index; fixed arrays are their bytes, no length.
"""


class DecodeError(Exception):
    pass


VARINT_BYTES = {16: 3, 32: 5, 64: 10}


class Reader:
    def __init__(self, data, limit=None):
        if limit is not None and len(data) > limit:
            raise DecodeError(f"{len(data)} bytes, more than the {limit} allowed")
        self.data = bytes(data)
        self.at = 0

    def take(self, count):
        if count < 0 or self.at + count > len(self.data):
            raise DecodeError(f"truncated at byte {self.at} (wanted {count} more)")
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def u8(self):
        return self.take(1)[0]

    def varint(self, bits):
        value = 0
        for index in range(VARINT_BYTES[bits]):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * index)
            if byte & 0x80 == 0:
                if index > 0 and byte == 0:
                    raise DecodeError(f"over-long varint before byte {self.at}")
                if value >> bits:
                    raise DecodeError(f"varint {value} does not fit u{bits}")
                return value
        raise DecodeError(f"varint longer than u{bits} allows before byte {self.at}")

    def u16(self):
        return self.varint(16)

    def u32(self):
        return self.varint(32)

    def u64(self):
        return self.varint(64)

    def flag(self, what="bool"):
        byte = self.u8()
        if byte > 1:
            raise DecodeError(f"{what} byte {byte} is neither 0 nor 1")
        return byte == 1

    def length(self, bound, what):
        count = self.u64()
        if count > bound:
            raise DecodeError(f"{what}: {count} items, more than {bound}")
        return count

    def byte_string(self, bound, what):
        return self.take(self.length(bound, what))

    def string(self, bound, what):
        raw = self.byte_string(bound, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DecodeError(f"{what}: not UTF-8 ({error})") from None

    def variant(self, count, what):
        index = self.u32()
        if index >= count:
            raise DecodeError(f"{what}: variant {index} of {count}")
        return index

    def seq(self, bound, what, item):
        return [item(self) for _ in range(self.length(bound, what))]

    def end(self):
        if self.at != len(self.data):
            raise DecodeError(f"{len(self.data) - self.at} trailing bytes")


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(text):
    raw = text.encode("utf-8")
    return varint(len(raw)) + raw


def byte_string(raw):
    return varint(len(raw)) + raw
