package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"
	"unicode/utf8"
)

// PartSuffix ends every part file's name.
const PartSuffix = ".ferry-part"

// maxPartBase is how many bytes of the final name a part name keeps: with the leading dot, the
// key and the suffix the part name stays within the 255-byte name limit of common file systems
// whatever the final name's length.
const maxPartBase = 200

// keyLen is the number of hex digits of the job key in a part name.
const keyLen = 8

// PartName is the hidden sibling a file is written under until it is whole and verified:
// "in/big.bin" with key k becomes "in/.big.bin.<8 hex of sha256(k)>.ferry-part". The key names
// the job's source and destination, so two jobs never share a part file, and a new copy with the
// same source and destination finds the part a failed one left and resumes it.
func PartName(final, key string) string {
	dir, base := path.Split(path.Clean(final))
	return dir + "." + clip(base, maxPartBase) + PartEnding(key)
}

// PartEnding is how the names of every part file of one job (one key) end: "."+tag+PartSuffix.
func PartEnding(key string) string { return "." + partTag(key) + PartSuffix }

// PartTag is the part of a part file's name that comes from the key: the part files of one
// job all end in "."+partTag(key)+PartSuffix.
func partTag(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])[:keyLen]
}

// IsPartOf reports whether name (cleaned, root-relative) is a part file of final, whatever its key.
func IsPartOf(final, name string) bool {
	dir, base := path.Split(path.Clean(final))
	ndir, nbase := path.Split(path.Clean(name))
	if dir != ndir {
		return false
	}
	prefix := "." + clip(base, maxPartBase) + "."
	if !strings.HasPrefix(nbase, prefix) || !strings.HasSuffix(nbase, PartSuffix) {
		return false
	}
	key := strings.TrimSuffix(strings.TrimPrefix(nbase, prefix), PartSuffix)
	if len(key) != keyLen {
		return false
	}
	_, err := hex.DecodeString(key)
	return err == nil
}

// IsPart reports whether a file name is a part file's.
func IsPart(name string) bool {
	base := path.Base(name)
	return strings.HasPrefix(base, ".") && strings.HasSuffix(base, PartSuffix)
}

// clip shortens s to at most n bytes without cutting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	// Drop a sequence cut at the end; invalid bytes before it stay (names may hold any bytes).
	for i := 1; i < utf8.UTFMax && i <= len(s); i++ {
		if utf8.RuneStart(s[len(s)-i]) {
			if !utf8.FullRuneInString(s[len(s)-i:]) {
				s = s[:len(s)-i]
			}
			break
		}
	}
	return s
}
