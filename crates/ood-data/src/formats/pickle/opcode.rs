//! The pickle opcodes of protocols 0-5, by name (CPython's `Lib/pickletools.py` is the reference).

macro_rules! opcodes {
    ($($name:ident = $byte:expr,)*) => {
        /// One pickle opcode.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Opcode {
            $($name,)*
        }

        impl Opcode {
            /// The opcode of a byte, `None` for a byte that is no opcode.
            pub fn from_byte(b: u8) -> Option<Self> {
                match b {
                    $($byte => Some(Opcode::$name),)*
                    _ => None,
                }
            }

            pub fn byte(self) -> u8 {
                match self {
                    $(Opcode::$name => $byte,)*
                }
            }
        }
    };
}

opcodes! {
    Mark = b'(',
    Stop = b'.',
    Pop = b'0',
    PopMark = b'1',
    Dup = b'2',
    Float = b'F',
    Int = b'I',
    BinInt = b'J',
    BinInt1 = b'K',
    Long = b'L',
    BinInt2 = b'M',
    None = b'N',
    PersId = b'P',
    BinPersId = b'Q',
    Reduce = b'R',
    String = b'S',
    BinString = b'T',
    ShortBinString = b'U',
    Unicode = b'V',
    BinUnicode = b'X',
    Append = b'a',
    Build = b'b',
    Global = b'c',
    Dict = b'd',
    EmptyDict = b'}',
    Appends = b'e',
    Get = b'g',
    BinGet = b'h',
    Inst = b'i',
    LongBinGet = b'j',
    List = b'l',
    EmptyList = b']',
    Obj = b'o',
    Put = b'p',
    BinPut = b'q',
    LongBinPut = b'r',
    SetItem = b's',
    Tuple = b't',
    EmptyTuple = b')',
    SetItems = b'u',
    BinFloat = b'G',
    Proto = 0x80,
    NewObj = 0x81,
    Ext1 = 0x82,
    Ext2 = 0x83,
    Ext4 = 0x84,
    Tuple1 = 0x85,
    Tuple2 = 0x86,
    Tuple3 = 0x87,
    NewTrue = 0x88,
    NewFalse = 0x89,
    Long1 = 0x8a,
    Long4 = 0x8b,
    ShortBinUnicode = 0x8c,
    BinUnicode8 = 0x8d,
    BinBytes8 = 0x8e,
    EmptySet = 0x8f,
    AddItems = 0x90,
    FrozenSet = 0x91,
    NewObjEx = 0x92,
    StackGlobal = 0x93,
    Memoize = 0x94,
    Frame = 0x95,
    ByteArray8 = 0x96,
    NextBuffer = 0x97,
    ReadonlyBuffer = 0x98,
    BinBytes = b'B',
    ShortBinBytes = b'C',
}

#[cfg(test)]
mod tests {
    use super::Opcode;

    #[test]
    fn bytes_round_trip_and_unknown_bytes_are_none() {
        let known = (0u8..=255).filter_map(Opcode::from_byte).count();
        assert_eq!(known, 68);
        for b in 0u8..=255 {
            if let Some(op) = Opcode::from_byte(b) {
                assert_eq!(op.byte(), b);
            }
        }
        assert_eq!(Opcode::from_byte(0xff), None);
        assert_eq!(Opcode::from_byte(b'R'), Some(Opcode::Reduce));
    }
}
