//! The exported chain file: the genesis and a run of blocks in their canonical encoding.
//!
//! ```text
//! "HVCHAIN1"                       8 bytes, magic and format version
//! u32 LE genesis length, genesis   the genesis JSON text, at most 1 MiB
//! (u32 LE block length, block)*    canonical blocks in height order, each at most
//!                                  BLOCK_BYTES_MAX
//! ```
//! Every length is bounded before anything is allocated; a truncated file is an error that
//! names the offset.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use halfveil_ledger::{Block, BLOCK_BYTES_MAX};

use crate::failure::Failure;

pub const MAGIC: &[u8; 8] = b"HVCHAIN1";
const GENESIS_BYTES_MAX: usize = 1 << 20;

/// Writes a chain file.
#[derive(Debug)]
pub struct ChainWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl ChainWriter {
    /// Creates `path` (never overwriting) and writes the header.
    pub fn create(path: &Path, genesis_text: &str) -> Result<ChainWriter, Failure> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|error| {
                Failure::error(format!("cannot create {}: {error}", path.display()))
            })?;
        let mut writer = ChainWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
        };
        writer.write(MAGIC)?;
        writer.frame(genesis_text.as_bytes())?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.out
            .write_all(bytes)
            .map_err(|error| Failure::error(format!("writing {}: {error}", self.path.display())))
    }

    fn frame(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let length = u32::try_from(bytes.len())
            .map_err(|_| Failure::error("a record is larger than 4 GiB"))?;
        self.write(&length.to_le_bytes())?;
        self.write(bytes)
    }

    /// Appends one block's canonical encoding.
    pub fn push(&mut self, encoded_block: &[u8]) -> Result<(), Failure> {
        self.frame(encoded_block)
    }

    /// Flushes and syncs the file.
    pub fn finish(mut self) -> Result<(), Failure> {
        self.out
            .flush()
            .map_err(|error| Failure::error(format!("writing {}: {error}", self.path.display())))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|error| Failure::error(format!("syncing {}: {error}", self.path.display())))
    }
}

/// Reads a chain file block by block.
#[derive(Debug)]
pub struct ChainReader {
    display: String,
    input: BufReader<File>,
    offset: u64,
    pub genesis_text: String,
}

impl ChainReader {
    pub fn open(path: &Path) -> Result<ChainReader, Failure> {
        let display = path.display().to_string();
        let file = File::open(path)
            .map_err(|error| Failure::error(format!("cannot open {display}: {error}")))?;
        let mut reader = ChainReader {
            display,
            input: BufReader::with_capacity(1 << 20, file),
            offset: 0,
            genesis_text: String::new(),
        };
        let mut magic = [0u8; 8];
        if !reader.read_exact(&mut magic)? || &magic != MAGIC {
            return Err(Failure::verification(format!(
                "{} is not a halfveil chain file (bad magic)",
                reader.display
            )));
        }
        let genesis = reader
            .frame(GENESIS_BYTES_MAX, "genesis")?
            .ok_or_else(|| Failure::verification(format!("{}: no genesis", reader.display)))?;
        reader.genesis_text = String::from_utf8(genesis).map_err(|_| {
            Failure::verification(format!("{}: the genesis is not UTF-8", reader.display))
        })?;
        Ok(reader)
    }

    /// Fills `buffer`; `false` at a clean end of file before the first byte.
    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<bool, Failure> {
        let mut filled = 0;
        while filled < buffer.len() {
            let read = self
                .input
                .read(&mut buffer[filled..])
                .map_err(|error| Failure::error(format!("reading {}: {error}", self.display)))?;
            if read == 0 {
                if filled == 0 {
                    return Ok(false);
                }
                return Err(Failure::verification(format!(
                    "{} is truncated at byte {}",
                    self.display,
                    self.offset + filled as u64
                )));
            }
            filled += read;
        }
        self.offset += buffer.len() as u64;
        Ok(true)
    }

    fn frame(&mut self, limit: usize, what: &str) -> Result<Option<Vec<u8>>, Failure> {
        let mut length = [0u8; 4];
        let start = self.offset;
        if !self.read_exact(&mut length)? {
            return Ok(None);
        }
        let length = u32::from_le_bytes(length) as usize;
        if length > limit {
            return Err(Failure::verification(format!(
                "{}: the {what} at byte {start} claims {length} bytes, more than {limit}",
                self.display
            )));
        }
        let mut bytes = vec![0u8; length];
        if !self.read_exact(&mut bytes)? && length > 0 {
            return Err(Failure::verification(format!(
                "{} is truncated at byte {}",
                self.display, self.offset
            )));
        }
        Ok(Some(bytes))
    }

    /// The next block's encoding, or `None` at the end.
    pub fn next_encoded(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        self.frame(BLOCK_BYTES_MAX, "block")
    }

    /// The next block, decoded strictly.
    pub fn next_block(&mut self) -> Result<Option<Block>, Failure> {
        let start = self.offset;
        let Some(bytes) = self.next_encoded()? else {
            return Ok(None);
        };
        Block::decode(&bytes).map(Some).map_err(|error| {
            Failure::verification(format!(
                "{}: the block at byte {start} does not decode: {error}",
                self.display
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.hv");
        let writer = ChainWriter::create(&path, "{\"genesis\": true}").unwrap();
        writer.finish().unwrap();
        let reader = ChainReader::open(&path).unwrap();
        assert_eq!(reader.genesis_text, "{\"genesis\": true}");

        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&10u32.to_le_bytes());
        bytes.extend_from_slice(b"short");
        std::fs::write(&path, &bytes).unwrap();
        let mut reader = ChainReader::open(&path).unwrap();
        let error = reader.next_block().unwrap_err();
        assert!(error.message.contains("truncated"), "{error}");

        let huge = dir.path().join("huge.hv");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&huge, &bytes).unwrap();
        assert!(ChainReader::open(&huge)
            .unwrap_err()
            .message
            .contains("claims"));

        let foreign = dir.path().join("foreign.hv");
        std::fs::write(&foreign, b"not a chain").unwrap();
        assert!(ChainReader::open(&foreign).is_err());
        assert!(
            ChainWriter::create(&path, "{}").is_err(),
            "never overwrites"
        );
    }
}
