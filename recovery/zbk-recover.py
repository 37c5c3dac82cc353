#!/usr/bin/env python3
"""zbk-recover: read a zbk repository without zbk.

An independent decoder of the zbk on-store format (docs/FORMAT.md, version 1),
written from that document alone: Python 3 with its standard library and
PyNaCl (Debian: apt-get install python3-nacl). It shares no code with zbk.

DIR is a directory laid out as the bucket's keys under the repository prefix:
what `aws s3 sync s3://bucket/prefix DIR` gives (after thawing the archived
volumes), or a zbk file:// store directory. A file:// store of layout 2
(the marker file .zbk-layout holds "2") is plain files, one per object at its
key, like a synced bucket; its sidecars (*.zbk-meta.json) and the names
starting with .zbk- (.zbk-layout, .zbk-migrate.lock, .zbk-uploads/,
.zbk-tmp-*) are not objects and are ignored. A store of layout 1, written
by older zbk versions and not yet opened by a current one (say an old USB
disk), keeps multipart volumes as descriptors plus part files (FORMAT.md
section 2); those are read too.

    zbk-recover.py DIR list [--json]               datasets, snapshots, chains
    zbk-recover.py DIR keys DATASET@SNAPSHOT       the volume keys a restore needs (to thaw)
    zbk-recover.py DIR cat STREAM > stream.zfs     one stream's plaintext (a zfs or btrfs send stream)
    zbk-recover.py DIR restore DATASET@SNAPSHOT TARGET
                                                   zfs receive the whole chain into TARGET (a new
                                                   dataset); for a btrfs dataset, btrfs receive it
                                                   into the directory TARGET on btrfs
    zbk-recover.py DIR manifest OUT.db             the newest manifest mirror (SQLite), optional
    zbk-recover.py selftest [FORMAT.md]            check this decoder against the document's vectors

The key: the passphrase from the file ZBK_PASSPHRASE_FILE (or
--passphrase-file FILE, or a prompt on a terminal), or --paper-key FILE (the
sheet printed by `zbk key export`; no key file needed then).

btrfs (FORMAT.md section 11b): a dataset whose records say "source": "btrfs"
is the absolute path of a subvolume, e.g. /srv/photos, and its snapshot names
are paths relative to the btrfs mount, e.g. /srv/photos@.snapshots/12/snapshot
(DATASET@SNAPSHOT is split at the '@' that ends a dataset in DIR). `list`
shows its streams as "btrfs send ..." and its snapshots by UUID (--json gives
both the recorded decimal "guid" and "uuid", and "source": "btrfs" on the
dataset and its streams; ZFS entries are as before). `restore` receives the
chain with `btrfs receive TARGET` (--btrfs 'sudo btrfs'), one stream at a
time, into TARGET: an empty directory on btrfs, created when only its parent
exists. After each receive the new subvolume's "Received UUID" (btrfs
subvolume show) must be the record's to.guid, else exit 6; it is then renamed
to the last '/'-separated component of the snapshot's name (snaps/s2 gives
s2) when those components are all different across the chain and each is a
valid name (not empty, '.' or '..', not starting with '-', no white space or
control characters, at most 255 bytes). Otherwise (snapper's
.snapshots/<n>/snapshot, a name used twice over time, a name starting with
'-') every snapshot of the chain is named by its whole name with '/' as '_',
leading '-' and '.' removed, white space as '_' ('snapshot' if nothing is
left), cut to 200 characters, then '-' and the first 8 hex digits of its
to.guid as a UUID (.snapshots/12/snapshot gives snapshots_12_snapshot-1a2b3c4d).
The result is read-only subvolumes; `btrfs subvolume snapshot` the last one for
a writable copy. This script itself makes TARGET and renames in it, so run it
as root or own TARGET's parent.

Safety: before a byte of a stream is written, its record is checked and every
volume is present with its recorded size; each sealed part is authenticated
completely before any of its plaintext is written; the last part of a volume
is written only after the volume's SHA-256 matched the record. A failed part
is never written, and `zfs receive` commits nothing without the stream's end,
which is in the last part of the last volume. A btrfs receive that fails or is
cut off leaves a writable subvolume without a received UUID: it is deleted.

Memory: one part's plaintext at a time (the repository's part size: 32 MiB by
default, at most 4 GiB) plus one 256 KiB chunk, plus Argon2id's memlimit
(256 MiB by default) while the key file is opened.

Exit codes:
    0   success
    1   other failure (I/O error, a missing program, output closed)
    2   bad usage: arguments, an existing restore target, no passphrase
    3   an object is missing: no key file, a volume or stream record the
        chain needs is not in DIR (not downloaded, not thawed, or deleted)
    4   wrong passphrase, bad paper key, unreadable key file, or data sealed
        with a key this passphrase does not open
    5   no such dataset, snapshot or stream in DIR
    6   integrity failure: a byte changed, an object truncated, extended,
        swapped or replayed, a volume hash or size differing from its record
    7   zfs receive (or another zfs command) failed; for a btrfs dataset,
        btrfs receive (or another btrfs command) failed
    130 interrupted
"""

import argparse
import base64
import getpass
import hashlib
import hmac
import json
import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile
import unicodedata

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_MISSING = 3
EXIT_KEY = 4
EXIT_NOT_FOUND = 5
EXIT_INTEGRITY = 6
EXIT_ZFS = 7  # also btrfs
EXIT_INTERRUPTED = 130


class Fail(Exception):
    """An error with an exit code and a message for people."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def load_nacl():
    try:
        import nacl.bindings
        import nacl.exceptions
        import nacl.pwhash.argon2id
    except ImportError:
        raise Fail(EXIT_FAIL, "PyNaCl is not installed: apt-get install python3-nacl (and run this with /usr/bin/python3), or pip install pynacl")
    return nacl


# ---------------------------------------------------------------------------
# Primitives (FORMAT.md section 3)

CHUNK = 262144
TAG = 16
HEADER = 32
PART_MAGIC = b"ZBKP"
BLOB_MAGIC = b"ZBKB"
KIND_STREAM = "zbk-stream-v1"
KIND_MANIFEST = "zbk-manifest-v1"


def u32le(n):
    return struct.pack("<I", n)


def u64le(n):
    return struct.pack("<Q", n)


def blake2b(data, size, key=b""):
    return hashlib.blake2b(data, digest_size=size, key=key).digest()


def kdf(master_key, subkey_id, context):
    """crypto_kdf_derive_from_key: BLAKE2b keyed with MK, salt = u64le(id), personal = context."""
    return hashlib.blake2b(b"", digest_size=32, key=master_key, salt=u64le(subkey_id) + bytes(8),
                           person=context.encode("ascii") + bytes(8)).digest()


def aead_open(key, nonce, ad, ciphertext):
    """XChaCha20-Poly1305-IETF; None when the tag does not verify."""
    nacl = load_nacl()
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(bytes(ciphertext), bytes(ad), bytes(nonce), bytes(key))
    except nacl.exceptions.CryptoError:
        return None


def aead_seal(key, nonce, ad, message):
    nacl = load_nacl()
    return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(bytes(message), bytes(ad), bytes(nonce), bytes(key))


def argon2id(password, salt, opslimit, memlimit):
    """crypto_pwhash with ALG_ARGON2ID13, 32-byte output."""
    nacl = load_nacl()
    return nacl.pwhash.argon2id.kdf(32, password, salt, opslimit=opslimit, memlimit=memlimit)


def key_id_of(master_key):
    return blake2b(b"zbk key id v1", 32, key=master_key)[:8]


class Keys:
    """The subkeys of one master key (FORMAT.md section 4)."""

    def __init__(self, master_key, source):
        self.key_id = key_id_of(master_key)
        self.data = kdf(master_key, 1, "zbk-data")
        self.meta = kdf(master_key, 1, "zbk-meta")
        self.names = kdf(master_key, 1, "zbk-name")
        self.source = source


def sealed_size(n):
    return HEADER + n + TAG * max(1, -(-n // CHUNK))


def plain_length_of(sealed_len):
    """Inverse of sealed_size; None when no plaintext length seals to it."""
    b = sealed_len - HEADER
    if b < TAG:
        return None
    if b == TAG:
        return 0
    q, r = divmod(b, CHUNK + TAG)
    if r == 0:
        return q * CHUNK
    if r <= TAG:
        return None
    return q * CHUNK + r - TAG


def part_ad(stream_id, volume, part, final):
    return bytes(stream_id) + u32le(volume) + u32le(part) + bytes([1 if final else 0])


def blob_ad(kind):
    k = kind.encode("utf-8")
    return u32le(len(k)) + k


def open_container(read, sealed_len, magic, keys_for, context_ad, what):
    """Authenticate and decrypt one container (FORMAT.md section 8).

    `read(n)` returns the next n bytes of the container. Returns the list of
    plaintext chunks, every one authenticated, or raises Fail: nothing of a
    container that fails is returned. `keys_for(key_id)` gives the subkey for
    the key id in the header (or raises Fail).
    """
    header = read(HEADER)
    if len(header) != HEADER:
        raise Fail(EXIT_INTEGRITY, f"{what}: truncated (no complete header)")
    if header[0:4] != magic:
        raise Fail(EXIT_INTEGRITY, f"{what}: not a zbk sealed {'part' if magic == PART_MAGIC else 'blob'} (bad magic)")
    if header[4] != 1:
        raise Fail(EXIT_INTEGRITY, f"{what}: container version {header[4]}; this decoder reads version 1 (written by a newer zbk, or corrupted)")
    if header[5:8] != b"\0\0\0":
        raise Fail(EXIT_INTEGRITY, f"{what}: non-zero reserved header bytes")
    key = keys_for(header[8:16])
    n = plain_length_of(sealed_len)
    if n is None:
        raise Fail(EXIT_INTEGRITY, f"{what}: impossible sealed length {sealed_len} (truncated or extended)")
    count = max(1, -(-n // CHUNK))
    prefix = header[16:32]
    out = []
    left = n
    for i in range(count):
        size = min(CHUNK, left)
        sealed = read(size + TAG)
        if len(sealed) != size + TAG:
            raise Fail(EXIT_INTEGRITY, f"{what}: truncated at chunk {i} of {count}")
        ad = header + context_ad + u64le(i) + bytes([1 if i == count - 1 else 0])
        plain = aead_open(key, prefix + u64le(i), ad, sealed)
        if plain is None:
            raise Fail(EXIT_INTEGRITY, f"{what}: failed authentication at chunk {i} of {count} (changed, truncated, swapped, replayed from elsewhere, or sealed with another key)")
        out.append(plain)
        left -= size
    return out


def seal_container(key, magic, key_id, prefix, context_ad, plaintext):
    """The writer's side, for the self-test only (zbk-recover never writes to a repository)."""
    header = magic + bytes([1, 0, 0, 0]) + key_id + prefix
    count = max(1, -(-len(plaintext) // CHUNK))
    out = [header]
    for i in range(count):
        m = plaintext[i * CHUNK:(i + 1) * CHUNK]
        ad = header + context_ad + u64le(i) + bytes([1 if i == count - 1 else 0])
        out.append(aead_seal(key, prefix + u64le(i), ad, m))
    return b"".join(out)


# ---------------------------------------------------------------------------
# The directory (FORMAT.md section 2)

# The first line of a layout-1 file-store descriptor (older zbk; layout 2 has none).
COMPOSITE_MAGIC = b"zbk-local-composite-v1\n"
STREAM_KEY = re.compile(r"^streams/([0-9a-f]{32})\.zbks$")
VOLUME_KEY = re.compile(r"^data/([0-9a-f]{32})/(\d{6})\.zbkv$")
# manifest/s<12-digit sequence>-<time>-<rand>.zbkm, or manifest/<time>-<rand>.zbkm before sequences
# (sequence 0). Reverse key order is newest claimed sequence first ("s" sorts after digits).
MIRROR_KEY = re.compile(r"^manifest/(?:s(\d{12})-)?\d{8}T\d{6}Z-[0-9a-f]+\.zbkm$")
PART_FILE = re.compile(r"^\d{5}\.[0-9a-f]{32}\.[0-9a-f]{64}$")
DATA_DIR = re.compile(r"^\.zbk-mp-[0-9a-f]{32}$")


class ObjectReader:
    """Sequential reader over one object: a plain file, or a layout-1 file-store descriptor's part files."""

    def __init__(self, pieces, key):
        self.pieces = pieces  # [(path, size)]
        self.key = key
        self.index = 0
        self.fh = None
        self.left = 0

    def read(self, n):
        out = []
        while n > 0 and self.index <= len(self.pieces):
            if self.fh is None:
                if self.index == len(self.pieces):
                    break
                path, size = self.pieces[self.index]
                try:
                    self.fh = open(path, "rb")
                except FileNotFoundError:
                    raise Fail(EXIT_MISSING, f"{self.key}: part file {path} is missing")
                self.left = size
            b = self.fh.read(min(n, self.left))
            if len(b) < min(n, self.left):
                raise Fail(EXIT_INTEGRITY, f"{self.key}: {self.pieces[self.index][0]} is shorter than its descriptor says")
            out.append(b)
            n -= len(b)
            self.left -= len(b)
            if self.left == 0:
                extra = self.fh.read(1)
                self.fh.close()
                self.fh = None
                if extra:
                    raise Fail(EXIT_INTEGRITY, f"{self.key}: {self.pieces[self.index][0]} is longer than its descriptor says")
                self.index += 1
        return b"".join(out)

    def close(self):
        if self.fh:
            self.fh.close()
            self.fh = None


class Repo:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        if not os.path.isdir(self.root):
            raise Fail(EXIT_USAGE, f"{root} is not a directory")

    def path(self, key):
        return os.path.join(self.root, *key.split("/"))

    def exists(self, key):
        return os.path.isfile(self.path(key))

    def pieces(self, key):
        """[(path, size)] whose concatenation is the object; Fail(EXIT_MISSING) when absent."""
        p = self.path(key)
        try:
            size = os.path.getsize(p)
        except OSError:
            raise Fail(EXIT_MISSING, f"{key} is not in {self.root}")
        if size >= len(COMPOSITE_MAGIC):
            with open(p, "rb") as f:
                head = f.read(len(COMPOSITE_MAGIC))
                if head == COMPOSITE_MAGIC:
                    return self._composite(key, p, f.read())
        return [(p, size)]

    def _composite(self, key, path, body):
        try:
            d = json.loads(body.decode("utf-8"))
            ok = isinstance(d, dict) and isinstance(d.get("dir"), str) and DATA_DIR.match(d["dir"]) and isinstance(d.get("parts"), list)
            parts = []
            for q in d["parts"] if ok else []:
                if not (isinstance(q, dict) and isinstance(q.get("file"), str) and PART_FILE.match(q["file"])
                        and isinstance(q.get("size"), int) and q["size"] >= 0):
                    ok = False
                    break
                parts.append((os.path.join(os.path.dirname(path), d["dir"], q["file"]), q["size"]))
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            raise Fail(EXIT_INTEGRITY, f"{key}: a file-store descriptor that does not parse")
        return parts

    def size(self, key):
        """The object's size; for a descriptor, every part file must be there with its size."""
        total = 0
        for path, want in self.pieces(key):
            try:
                got = os.path.getsize(path)
            except OSError:
                raise Fail(EXIT_MISSING, f"{key}: its part file {path} is missing")
            if got != want:
                raise Fail(EXIT_INTEGRITY, f"{key}: its part file {path} has {got} bytes, its descriptor says {want}")
            total += got
        return total

    def reader(self, key):
        return ObjectReader(self.pieces(key), key)

    def read_all(self, key):
        r = self.reader(key)
        try:
            return r.read(self.size(key))
        finally:
            r.close()

    def keys(self, prefix):
        """Object keys under `prefix` (e.g. 'streams/'), sorted; skips file-store internals
        (sidecars, and every name starting with .zbk-: .zbk-layout, .zbk-migrate.lock,
        .zbk-uploads/, .zbk-tmp-*, layout 1's .zbk-mp-*/)."""
        base = self.path(prefix.rstrip("/")) if prefix else self.root
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".zbk-")]
            for name in filenames:
                if name.startswith(".zbk-") or name.endswith(".zbk-meta.json"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                out.append(rel)
        return sorted(out)


# ---------------------------------------------------------------------------
# Passphrase, key files, paper key (FORMAT.md sections 5-7)

def read_passphrase_file(path):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
    except OSError as e:
        raise Fail(EXIT_USAGE, f"cannot read the passphrase file {path}: {e.strerror}")
    if text.startswith("\ufeff"):
        text = text[1:]
    line = text.split("\n", 1)[0]
    if "\n" in text and line.endswith("\r"):
        line = line[:-1]
    if line == "":
        raise Fail(EXIT_USAGE, f"the passphrase file {path} is empty (its first line is the passphrase)")
    return line


def b64(s, length):
    """Strict standard base64 of an exact decoded length; None otherwise."""
    if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", s) or len(s) % 4:
        return None
    try:
        b = base64.b64decode(s, validate=True)
    except ValueError:
        return None
    return b if len(b) == length and base64.b64encode(b).decode() == s else None


def parse_key_file(data, name):
    bad = Fail(EXIT_KEY, f"{name} is not a valid zbk key file")
    try:
        o = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise bad
    if not isinstance(o, dict) or o.get("format") != "zbk-keyfile":
        raise bad
    if type(o.get("version")) is not int or o["version"] != 1:
        raise Fail(EXIT_KEY, f"{name} has key file version {o.get('version')!r}; this decoder reads version 1")
    if not isinstance(o.get("keyId"), str) or not re.fullmatch(r"[0-9a-f]{16}", o["keyId"]):
        raise bad
    slots = o.get("slots")
    if not isinstance(slots, list) or not 1 <= len(slots) <= 16:
        raise bad
    out = []
    for s in slots:
        k = s.get("kdf") if isinstance(s, dict) else None
        if not (isinstance(k, dict) and k.get("alg") == "argon2id13" and isinstance(s.get("id"), str) and re.fullmatch(r"[0-9a-f]{8}", s["id"])):
            raise bad
        ops, mem = k.get("opslimit"), k.get("memlimit")
        # FORMAT.md section 6: the most zbk writes (MODERATE); a hostile key file cannot stall us.
        if not (type(ops) is int and 1 <= ops <= 3 and type(mem) is int and 8192 <= mem <= 256 * 1024 ** 2):
            raise bad
        salt, nonce, wrapped = b64(k.get("salt"), 16), b64(s.get("nonce"), 24), b64(s.get("wrappedKey"), 48)
        if salt is None or nonce is None or wrapped is None:
            raise bad
        out.append({"id": s["id"], "ops": ops, "mem": mem, "salt": salt, "nonce": nonce, "wrapped": wrapped})
    return o["keyId"], out


def unwrap_key_file(data, name, passphrase):
    """The master key, or None when no slot opens with this passphrase."""
    key_id, slots = parse_key_file(data, name)
    pw = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    for s in slots:
        kek = argon2id(pw, s["salt"], s["ops"], s["mem"])
        ad = b"zbk-keyfile\0" + u32le(1) + s["id"].encode() + b"\0" + key_id.encode()
        mk = aead_open(kek, s["nonce"], ad, s["wrapped"])
        if mk is not None:
            if key_id_of(mk).hex() != key_id:
                raise Fail(EXIT_KEY, f"{name}: the unwrapped key does not match its keyId (corrupt key file)")
            return mk
    return None


B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def unbase32(s, nbytes):
    if len(s) != -(-nbytes * 8 // 5):
        return None
    acc = bits = 0
    out = bytearray()
    for ch in s:
        v = B32.find(ch)
        if v < 0:
            return None
        acc = (acc << 5) | v
        bits += 5
        if bits >= 8:
            bits -= 8
            if len(out) < nbytes:
                out.append((acc >> bits) & 0xFF)
    return bytes(out) if len(out) == nbytes else None


def decode_paper_key(text):
    """The master key of a paper key sheet; Fail(EXIT_KEY) naming the line with a typo."""
    lines, check, key_id = {}, None, None
    for raw in re.split(r"\r?\n", text):
        m = re.match(r"^([1-9]|check|key id)\s*:\s*(.*)$", raw.strip(), re.I)
        if not m:
            continue
        label = m.group(1).lower()
        norm = re.sub(r"[\s-]", "", m.group(2).upper()).replace("0", "O").replace("1", "I").replace("8", "B")
        if label == "check":
            check = norm
        elif label == "key id":
            key_id = m.group(2).strip().lower()
        else:
            lines[int(label)] = norm
    mk = b""
    for n in range(1, 5):
        if n not in lines:
            raise Fail(EXIT_KEY, f"paper key line {n} is missing")
        b = unbase32(lines[n], 10)
        if b is None:
            raise Fail(EXIT_KEY, f"paper key line {n} should have 16 letters/digits from A-Z and 2-7; re-check it")
        if b[8:] != blake2b(b"zbk paper line" + bytes([n]) + b[:8], 16)[:2]:
            raise Fail(EXIT_KEY, f"paper key line {n} does not match its checksum: there is a typo in line {n}")
        mk += b[:8]
    if check is None:
        raise Fail(EXIT_KEY, 'paper key "check:" line is missing')
    if unbase32(check, 5) != blake2b(b"zbk paper key" + mk, 16)[:5]:
        raise Fail(EXIT_KEY, 'paper key "check:" line does not match: re-check it, and that all lines come from the same sheet')
    if key_id is not None and key_id != key_id_of(mk).hex():
        raise Fail(EXIT_KEY, f"paper key lines give key id {key_id_of(mk).hex()} but its key id line says {key_id}: re-check the key id line")
    return mk


class KeyStore:
    """Master keys by key id: from the paper key, or the key files opened with the passphrase.

    The key files tried: zbk.key, zbk.key.next (a passphrase change cut
    short: the newest passphrase), zbk.key.prev (left by older zbk: the
    previous passphrase), zbk.key.replaced-* (other repositories whose
    objects may remain). Others
    than the first that opens are tried only when data sealed with their
    key id is met.
    """

    def __init__(self, repo, passphrase=None, paper_key=None):
        self.keys = {}
        self.repo = repo
        self.passphrase = passphrase
        self.tried = set()
        self.files = []
        if paper_key is not None:
            k = Keys(paper_key, "paper key")
            self.keys[k.key_id] = k
            return
        names = [n for n in ["zbk.key", "zbk.key.next", "zbk.key.prev"] if repo.exists(n)]
        names += sorted((n for n in os.listdir(repo.root) if n.startswith("zbk.key.replaced-") and not n.endswith(".zbk-meta.json")), reverse=True)
        self.files = names
        if not names:
            raise Fail(EXIT_MISSING, f"no key file (zbk.key) in {repo.root}: is it the top of the repository (the bucket prefix)? Without it, use --paper-key")
        errors = []
        for n in names:
            try:
                if self._try(n):
                    return
            except Fail as e:
                errors.append(e.message)
        raise Fail(EXIT_KEY, "wrong passphrase: it opens none of the key files (" + ", ".join(names) + ")" + ("; " + "; ".join(errors) if errors else "")
                   + ". A damaged slot looks the same as a wrong passphrase; the paper key (--paper-key) needs no key file")

    def _try(self, name):
        self.tried.add(name)
        data = self.repo.read_all(name)
        key_id, _ = parse_key_file(data, name)
        if bytes.fromhex(key_id) in self.keys:
            return True
        mk = unwrap_key_file(data, name, self.passphrase)
        if mk is None:
            return False
        k = Keys(mk, f"{name}")
        self.keys[k.key_id] = k
        return True

    def get(self, key_id):
        """Keys for this key id, or None."""
        if key_id in self.keys:
            return self.keys[key_id]
        if self.passphrase is not None:
            for n in self.files:
                if n in self.tried:
                    continue
                try:
                    kid, _ = parse_key_file(self.repo.read_all(n), n)
                except Fail:
                    continue
                if kid == key_id.hex():
                    try:
                        self._try(n)
                    except Fail:
                        pass
        return self.keys.get(key_id)

    def need(self, key_id, what):
        k = self.get(key_id)
        if k is None:
            held = ", ".join(x.hex() for x in self.keys)
            raise Fail(EXIT_KEY, f"{what} is sealed with key {key_id.hex()}; the key(s) open here are {held} (another repository's data, or a key file you lack)")
        return k


# ---------------------------------------------------------------------------
# Stream records (FORMAT.md sections 9, 10)

DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")


def is_count(v):
    return type(v) is int and v >= 0


def check_record(r, stream_id):
    """Raise ValueError naming what is wrong with a decrypted record."""
    if not isinstance(r, dict) or type(r.get("v")) is not int or r["v"] != 1:
        raise ValueError("unknown record version (v)")
    if r.get("streamId") != stream_id:
        raise ValueError(f"streamId {r.get('streamId')!r} is not the id in its key")
    if not isinstance(r.get("dataset"), str) or r["dataset"] == "":
        raise ValueError("dataset")
    f = r.get("from")
    if f is not None and not (isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("guid"), str) and DECIMAL.match(f["guid"])):
        raise ValueError("from")
    t = r.get("to")
    if not (isinstance(t, dict) and isinstance(t.get("name"), str) and all(isinstance(t.get(k), str) and DECIMAL.match(t[k]) for k in ("guid", "createtxg"))
            and isinstance(t.get("creation"), (int, float))):
        raise ValueError("to")
    if not (is_count(r.get("plaintextSize")) and is_count(r.get("storedSize"))):
        raise ValueError("sizes")
    source = r.get("source")
    if source is not None and not isinstance(source, str):
        raise ValueError("source")
    if source == "btrfs":
        # FORMAT.md section 10: each guid is a UUID as a 128-bit integer.
        for end in (f, t):
            if end is not None and int(end["guid"]) >= 1 << 128:
                raise ValueError("guid: more than 128 bits for a btrfs UUID")
    flags = r.get("sendFlags")
    if flags is not None and not (isinstance(flags, list) and all(isinstance(x, str) and x.startswith("-") for x in flags)):
        raise ValueError("sendFlags")
    vols = r.get("volumes")
    if not isinstance(vols, list) or not vols:
        raise ValueError("volumes")
    plain = stored = 0
    for i, v in enumerate(vols):
        if not isinstance(v, dict) or v.get("index") != i or v.get("key") != f"data/{stream_id}/{i:06d}.zbkv":
            raise ValueError(f"volume {i}: index or key")
        if not all(is_count(v.get(k)) for k in ("plaintextSize", "storedSize", "partCount", "partSize")) or v["partCount"] < 1 or v["partSize"] < 1:
            raise ValueError(f"volume {i}: sizes")
        if not isinstance(v.get("plaintextSha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", v["plaintextSha256"]):
            raise ValueError(f"volume {i}: plaintextSha256")
        if v["partSize"] != vols[0]["partSize"]:
            raise ValueError(f"volume {i}: another partSize")
        c, s, n = v["partCount"], v["partSize"], v["plaintextSize"]
        if not ((c - 1) * s < n <= c * s or (n == 0 and c == 1)):
            raise ValueError(f"volume {i}: {n} plaintext bytes cannot be {c} parts of {s}")
        if v["storedSize"] != (c - 1) * sealed_size(s) + sealed_size(n - (c - 1) * s):
            raise ValueError(f"volume {i}: storedSize {v['storedSize']} does not follow from its parts")
        plain += n
        stored += v["storedSize"]
    if plain != r["plaintextSize"] or stored != r["storedSize"]:
        raise ValueError("plaintextSize/storedSize are not the sums of the volumes'")


class Stream:
    def __init__(self, rec, key_id):
        self.rec = rec
        self.key_id = key_id
        self.id = rec["streamId"]
        self.dataset = rec["dataset"]
        self.frm = rec["from"]
        self.to = rec["to"]
        self.flags = rec.get("sendFlags")
        self.source = rec.get("source")  # None: ZFS; "btrfs" (FORMAT.md section 11b)
        self.raw = "-w" in (self.flags or [])
        self.stored = rec["storedSize"]
        self.volumes = rec["volumes"]
        self.problem = None  # why its volumes in DIR cannot be used, or None

    @property
    def kind(self):
        return "full" if self.frm is None else "incremental"

    @property
    def btrfs(self):
        return self.source == "btrfs"

    def label(self):
        base = f"@{self.frm['name']}" if self.frm else "(full)"
        return f"{self.dataset} {base} -> @{self.to['name']}"


def guid_uuid(guid):
    """A btrfs record's decimal guid as the UUID it stands for (FORMAT.md section 11b)."""
    h = f"{int(guid):032x}"
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def load_stream(repo, keystore, key, stream_id):
    """The Stream of streams/<id>.zbks; Fail when it cannot be used."""
    data = repo.read_all(key)
    pos = [0]

    def read(n):
        b = data[pos[0]:pos[0] + n]
        pos[0] += n
        return b

    used = []

    def keys_for(kid):
        k = keystore.need(kid, key)
        used.append(kid)
        return k.meta
    plain = b"".join(open_container(read, len(data), BLOB_MAGIC, keys_for, blob_ad(KIND_STREAM), key))
    try:
        rec = json.loads(plain.decode("utf-8"))
        check_record(rec, stream_id)
    except (ValueError, UnicodeDecodeError) as e:
        raise Fail(EXIT_INTEGRITY, f"{key}: authentic but not a usable stream record: {e}")
    return Stream(rec, used[0])


def volume_problems(repo, s):
    """(exit code, reason) for the first volume that is absent or of the wrong size, else None."""
    for v in s.volumes:
        try:
            size = repo.size(v["key"])
        except Fail as e:
            return (e.code, e.message)
        if size != v["storedSize"]:
            return (EXIT_INTEGRITY, f"{v['key']} has {size} bytes, its stream record says {v['storedSize']} (truncated, extended or replaced)")
    return None


class Catalog:
    """Every stream record in DIR, opened and checked."""

    def __init__(self, repo, keystore):
        self.repo = repo
        self.streams = []
        self.problems = []  # (key, reason, exit code)
        recorded = set()
        for key in repo.keys("streams/"):
            m = STREAM_KEY.match(key)
            if not m:
                self.problems.append((key, "not a stream record name", EXIT_INTEGRITY))
                continue
            try:
                s = load_stream(repo, keystore, key, m.group(1))
            except Fail as e:
                self.problems.append((key, e.message, e.code))
                continue
            p = volume_problems(repo, s)
            if p:
                s.problem = p
            self.streams.append(s)
            recorded.add(s.id)
        for key in repo.keys("data/"):
            m = VOLUME_KEY.match(key)
            if not m:
                self.problems.append((key, "not a volume name", EXIT_INTEGRITY))
            elif m.group(1) not in recorded:
                self.problems.append((key, "a volume without a (usable) stream record: an upload that never finished, or a stream being deleted", EXIT_MISSING))

    def datasets(self):
        return sorted({s.dataset for s in self.streams})

    def find(self, prefix):
        if len(prefix) < 4 or not re.fullmatch(r"[0-9a-fA-F]+", prefix):
            raise Fail(EXIT_USAGE, f"{prefix!r} is not a stream id (32 hex characters, or a unique prefix of at least 4)")
        prefix = prefix.lower()
        hits = [s for s in self.streams if s.id.startswith(prefix)]
        if len(hits) > 1:
            raise Fail(EXIT_USAGE, f"{prefix} matches {len(hits)} streams: give more of the id")
        if hits:
            return hits[0]
        for key, reason, code in self.problems:
            if key.startswith(f"streams/{prefix}"):
                raise Fail(code, f"the stream record {key} is not usable: {reason}")
        if any(k.startswith(f"data/{prefix}") for k in self.repo.keys("data/")):
            raise Fail(EXIT_MISSING, f"stream {prefix} has volumes but no stream record in {self.repo.root}")
        raise Fail(EXIT_NOT_FOUND, f"no stream {prefix} in {self.repo.root}")


# ---------------------------------------------------------------------------
# Chains (FORMAT.md section 12)

def best_chains(streams):
    """{to guid: (cost, length, chain list)} of the best chain ending at each snapshot."""
    ordered = sorted(streams, key=lambda s: (int(s.to["createtxg"]), s.id))
    best, of_kind = {}, {}

    def better(a, b):
        if b is None:
            return True
        if a[0] != b[0]:
            return a[0] < b[0]
        if a[1] != b[1]:
            return a[1] < b[1]
        return a[2][-1].id < b[2][-1].id

    for s in ordered:
        kind = "raw" if s.raw else "plain"
        if s.frm is None:
            cand = (s.stored, 1, [s])
        else:
            base = of_kind.get((s.frm["guid"], kind))
            if base is None:
                continue
            cand = (base[0] + s.stored, base[1] + 1, base[2] + [s])
        if better(cand, of_kind.get((s.to["guid"], kind))):
            of_kind[(s.to["guid"], kind)] = cand
        if better(cand, best.get(s.to["guid"])):
            best[s.to["guid"]] = cand
    return best


def missing_link(streams, guid):
    """Why no chain reaches `guid`: the first base that no stream of the right kind ends at."""
    ending = {}
    for s in streams:
        ending.setdefault(s.to["guid"], []).append(s)
    seen = set()
    while True:
        if guid not in ending:
            return f"nothing ends at snapshot guid {guid}"
        seen.add(guid)
        incs = sorted((s for s in ending[guid] if s.frm is not None), key=lambda s: s.id)
        if not incs:
            return f"only streams of the other kind (raw or not) end at snapshot guid {guid}"
        nxt = next((s for s in incs if s.frm["guid"] in ending and s.frm["guid"] not in seen), incs[0])
        if nxt.frm["guid"] not in ending or nxt.frm["guid"] in seen:
            return f"broken chain: {nxt.label()} (stream {nxt.id}) needs @{nxt.frm['name']} (guid {nxt.frm['guid']}), which no usable stream ends at"
        guid = nxt.frm["guid"]


def parse_target(spec, cat=None):
    """(dataset, snapshot) of DATASET@SNAPSHOT. A ZFS name holds one '@'; a btrfs
    path and snapshot path may hold more, so with the catalog the split is at
    the '@' that ends a dataset in DIR (one a stream of it ends at, if several)."""
    if "@" not in spec:
        raise Fail(EXIT_USAGE, f"{spec!r}: give DATASET@SNAPSHOT")
    ds, snap = spec.rsplit("@", 1)
    if cat is not None and ds not in cat.datasets():
        known = set(cat.datasets())
        splits = [(spec[:i], spec[i + 1:]) for i, c in enumerate(spec) if c == "@" and spec[:i] in known]
        ending = [(d, n) for d, n in splits if any(s.dataset == d and s.to["name"] == n for s in cat.streams)]
        if ending or splits:
            ds, snap = (ending or splits)[-1]
    return ds, snap


def snapshot_guid(cat, ds, snap):
    """The guid of DATASET@SNAPSHOT among the records (the newest, if a name was reused)."""
    if ds not in cat.datasets():
        raise Fail(EXIT_NOT_FOUND, f"no dataset {ds} in the stream records (datasets: {', '.join(cat.datasets()) or 'none'})")
    ends = [s for s in cat.streams if s.dataset == ds and s.to["name"] == snap]
    if not ends:
        raise Fail(EXIT_NOT_FOUND, f"no stream of {ds} ends at @{snap}")
    return max(ends, key=lambda s: int(s.to["createtxg"])).to["guid"]


def chain_for(cat, ds, snap, usable_only):
    """The chain (list of Stream) that restores DATASET@SNAPSHOT."""
    guid = snapshot_guid(cat, ds, snap)
    pool = [s for s in cat.streams if s.dataset == ds and (not usable_only or s.problem is None)]
    best = best_chains(pool).get(guid)
    if best is not None:
        return best[2]
    if usable_only:
        # Say which object keeps it from being restorable.
        full = best_chains([s for s in cat.streams if s.dataset == ds]).get(guid)
        if full is not None:
            s = next(x for x in full[2] if x.problem is not None)
            raise Fail(s.problem[0], f"{ds}@{snap} cannot be restored from {cat.repo.root}: {s.problem[1]} (stream {s.id}, {s.label()})")
    raise Fail(EXIT_MISSING, f"{ds}@{snap} has no complete chain: {missing_link(pool, guid)}")


# ---------------------------------------------------------------------------
# Decoding a stream (FORMAT.md section 9)

def write_stream(repo, keystore, s, out):
    """Write stream `s`'s plaintext with `out(chunks)`, checked as the module docstring says."""
    if s.problem:
        raise Fail(s.problem[0], f"stream {s.id}: {s.problem[1]}")
    keys = keystore.need(s.key_id, f"stream {s.id}")
    sid = bytes.fromhex(s.id)
    written = 0

    def keys_for(kid):
        if kid != s.key_id:
            raise Fail(EXIT_INTEGRITY, f"a part of stream {s.id} is sealed with key {kid.hex()}, its record with {s.key_id.hex()}")
        return keys.data

    for v in s.volumes:
        c, size, n = v["partCount"], v["partSize"], v["plaintextSize"]
        h = hashlib.sha256()
        r = repo.reader(v["key"])
        try:
            for p in range(c):
                plain_len = size if p < c - 1 else n - (c - 1) * size
                where = f"{v['key']} part {p + 1} of {c}"
                chunks = open_container(r.read, sealed_size(plain_len), PART_MAGIC, keys_for, part_ad(sid, v["index"], p, p == c - 1), where)
                for ch in chunks:
                    h.update(ch)
                if p == c - 1 and not hmac.compare_digest(h.hexdigest(), v["plaintextSha256"]):
                    raise Fail(EXIT_INTEGRITY, f"{v['key']}: every part authenticated, but the volume's SHA-256 is not its record's (not the volume recorded)")
                out(chunks)
                written += plain_len
            if r.read(1):
                raise Fail(EXIT_INTEGRITY, f"{v['key']} is longer than its stream record says")
        finally:
            r.close()
    return written


# ---------------------------------------------------------------------------
# Commands

def fmt_size(n):
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def cmd_list(repo, keystore, args):
    cat = Catalog(repo, keystore)
    data = {"keys": [{"keyId": k.key_id.hex(), "from": k.source} for k in keystore.keys.values()], "datasets": [], "problems": []}
    for ds in cat.datasets():
        streams = [s for s in cat.streams if s.dataset == ds]
        best = best_chains(streams)
        snaps = {}
        for s in streams:
            snaps.setdefault(s.to["guid"], s.to)
        btrfs = any(s.btrfs for s in streams)
        entry = {"name": ds, "snapshots": [], "streams": []}
        if btrfs:
            entry["source"] = "btrfs"
        for guid, to in sorted(snaps.items(), key=lambda kv: int(kv[1]["createtxg"])):
            b = best.get(guid)
            chain = b[2] if b else None
            entry["snapshots"].append({
                "name": to["name"], "guid": guid, **({"uuid": guid_uuid(guid)} if btrfs else {}), "createtxg": to["createtxg"], "creation": to["creation"],
                "chain": [x.id for x in chain] if chain else None,
                "chainSnapshots": [x.to["name"] for x in chain] if chain else None,
                "storedSize": b[0] if b else None,
                "restorableHere": bool(chain) and all(x.problem is None for x in chain),
                "problem": None if chain else missing_link(streams, guid),
            })
        for s in sorted(streams, key=lambda x: (int(x.to["createtxg"]), x.id)):
            entry["streams"].append({
                "streamId": s.id, "kind": s.kind, "from": s.frm, "to": s.to, "sendFlags": s.flags, "raw": s.raw,
                "plaintextSize": s.rec["plaintextSize"], "storedSize": s.stored, "volumes": [v["key"] for v in s.volumes],
                "keyId": s.key_id.hex(), "volumesHere": s.problem is None, "problem": s.problem[1] if s.problem else None,
                **({"source": "btrfs"} if s.btrfs else {}),
            })
        data["datasets"].append(entry)
    data["problems"] = [{"key": k, "reason": r} for k, r, _ in cat.problems]
    if args.json:
        print(json.dumps(data, indent=2))
        return
    for k in data["keys"]:
        print(f"key {k['keyId']} (from {k['from']})")
    for d in data["datasets"]:
        print(f"\n{d['name']}" + ("  (btrfs)" if "source" in d else ""))
        for sn in d["snapshots"]:
            ident = f"uuid {sn['uuid']}" if "uuid" in sn else f"guid {sn['guid']}"
            if sn["chain"]:
                links = " -> ".join("@" + n for n in sn["chainSnapshots"])
                here = "volumes here" if sn["restorableHere"] else "volumes NOT all here"
                print(f"  @{sn['name']}  {ident}  chain {links} ({len(sn['chain'])} stream(s), {fmt_size(sn['storedSize'])}; {here})")
            else:
                print(f"  @{sn['name']}  {ident}  not restorable: {sn['problem']}")
        print("  streams:")
        for st in d["streams"]:
            base = f"@{st['from']['name']}" if st["from"] else "full"
            flags = " ".join(st["sendFlags"]) if st["sendFlags"] else ("(none)" if st["sendFlags"] == [] else "(unrecorded)")
            state = "volumes here" if st["volumesHere"] else st["problem"]
            send = "btrfs send" if "source" in st else "zfs send"
            print(f"    {st['streamId']}  {base} -> @{st['to']['name']}  {send} {flags}  {fmt_size(st['plaintextSize'])} in {len(st['volumes'])} volume(s); {state}")
    if data["problems"]:
        print("\nnot usable:")
        for p in data["problems"]:
            print(f"  {p['key']}: {p['reason']}")


def cmd_keys(repo, keystore, args):
    cat = Catalog(repo, keystore)
    ds, snap = parse_target(args.snapshot, cat)
    for s in chain_for(cat, ds, snap, usable_only=False):
        for v in s.volumes:
            print(v["key"])


def cmd_cat(repo, keystore, args):
    cat = Catalog(repo, keystore)
    s = cat.find(args.stream)
    if sys.stdout.isatty():
        raise Fail(EXIT_USAGE, "stdout is a terminal: redirect the stream to a file or pipe it into zfs receive")
    out = sys.stdout.buffer

    def emit(chunks):
        out.writelines(chunks)
    write_stream(repo, keystore, s, emit)
    out.flush()


def zfs_run(zfs, args, check=True):
    try:
        r = subprocess.run(zfs + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise Fail(EXIT_ZFS, f"cannot run {' '.join(zfs)}: {e.strerror}")
    if check and r.returncode != 0:
        raise Fail(EXIT_ZFS, f"{' '.join(zfs + args)} failed: {(r.stderr or r.stdout).strip()}")
    return r


def receive(repo, keystore, s, zfs, argv, what="zfs receive"):
    errors = tempfile.TemporaryFile()  # not a pipe: zfs must never block on it while we write
    try:
        proc = subprocess.Popen(zfs + argv, stdin=subprocess.PIPE, stderr=errors)
    except OSError as e:
        raise Fail(EXIT_ZFS, f"cannot run {' '.join(zfs)}: {e.strerror}")

    def emit(chunks):
        try:
            proc.stdin.writelines(chunks)
        except BrokenPipeError:
            raise Fail(EXIT_ZFS, f"{what} stopped reading")
    try:
        write_stream(repo, keystore, s, emit)
        proc.stdin.close()
    except BaseException:
        # Kill before closing its input: zfs must never take a cut stream for a whole one.
        proc.kill()
        proc.wait()
        raise
    code = proc.wait()
    errors.seek(0)
    err = errors.read().decode("utf-8", "replace").strip()
    errors.close()
    if code != 0:
        raise Fail(EXIT_ZFS, f"{' '.join(zfs + argv)} failed for stream {s.id} ({s.label()}): {err}")


def cmd_restore(repo, keystore, args):
    cat = Catalog(repo, keystore)
    ds, snap = parse_target(args.snapshot, cat)
    chain = chain_for(cat, ds, snap, usable_only=True)
    sources = {s.source for s in chain}
    if sources == {"btrfs"}:
        return restore_btrfs(repo, keystore, ds, snap, chain, args)
    if sources != {None}:
        raise Fail(EXIT_FAIL, f"{ds}@{snap}: its streams are of source(s) {', '.join(sorted(str(x) for x in sources))}; this decoder receives ZFS and btrfs streams only")
    zfs = shlex.split(args.zfs)
    target = args.target
    if "@" in target or target.startswith("/") or target == "":
        raise Fail(EXIT_USAGE, f"{target!r}: the target is a dataset name that does not exist yet, e.g. pool/restored")
    print(f"restoring {ds}@{snap} into {target}: " + " -> ".join(f"@{s.to['name']} ({s.id})" for s in chain), file=sys.stderr)
    if args.dry_run:
        for i, s in enumerate(chain):
            print(" ".join(zfs + ["receive", "-u"] + (["-F"] if i else []) + [target]) + f"   < stream {s.id}")
        return
    if zfs_run(zfs, ["list", "-H", "-o", "name", target], check=False).returncode == 0:
        raise Fail(EXIT_USAGE, f"{target} already exists: restore into a new dataset")
    for i, s in enumerate(chain):
        print(f"  receiving {s.label()} ({fmt_size(s.rec['plaintextSize'])})", file=sys.stderr)
        try:
            receive(repo, keystore, s, zfs, ["receive", "-u"] + (["-F"] if i else []) + [target])
        except Fail as e:
            held = ", ".join("@" + x.to["name"] for x in chain[:i])
            e.message += f" — nothing of this stream was committed; {target} holds {held} from the streams before it" if i else " — nothing was received"
            raise
    last = chain[-1].to
    got = zfs_run(zfs, ["get", "-Hp", "-o", "value", "guid", f"{target}@{last['name']}"], check=False)
    if got.returncode == 0 and got.stdout.strip() != last["guid"]:
        raise Fail(EXIT_ZFS, f"{target}@{last['name']} has guid {got.stdout.strip()}, the backup's is {last['guid']}")
    if chain[0].raw:
        print(f"done: {target}@{last['name']} is a raw (still encrypted) dataset: zfs load-key {target}, then zfs mount {target}", file=sys.stderr)
        return
    if not args.no_mount:
        # A fresh mount: some ZFS versions serve stale contents after an incremental receive into a mounted dataset.
        zfs_run(zfs, ["unmount", target], check=False)
        m = zfs_run(zfs, ["mount", target], check=False)
        if m.returncode != 0 and "already mounted" not in m.stderr:
            print(f"warning: zfs mount {target}: {m.stderr.strip()}", file=sys.stderr)
    print(f"done: {target}@{last['name']}", file=sys.stderr)


# btrfs (FORMAT.md section 11b)

def mount_type(path):
    """The filesystem type of the mount `path` (a real path) is on, from /proc/self/mountinfo; None if unknown."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best, kind = -1, None
    for line in lines:
        fields = line.split(" ")
        if " - " not in line or len(fields) < 5:
            continue
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        after = line.split(" - ", 1)[1].split(" ")
        inside = path == mp or mp == "/" or path.startswith(mp.rstrip("/") + "/")
        if inside and len(mp) >= best:  # the last of equal mounts is the one on top
            best, kind = len(mp), after[0]
    return kind


def btrfs_target(target):
    """Check (and make) the btrfs restore target: an empty directory on btrfs, or a new one whose parent is there."""
    target = os.path.abspath(target)
    if os.path.lexists(target):
        if not os.path.isdir(target):
            raise Fail(EXIT_USAGE, f"{target} is not a directory: a btrfs dataset is restored into a new or empty directory on btrfs")
        there = sorted(os.listdir(target))
        if there:
            raise Fail(EXIT_USAGE, f"{target} already holds {', '.join(there[:3])}{', ...' if len(there) > 3 else ''}: restore into a new or empty directory")
        where, make = target, False
    else:
        where, make = os.path.dirname(target), True
        if not os.path.isdir(where):
            raise Fail(EXIT_USAGE, f"the parent directory {where} of {target} does not exist")
    kind = mount_type(os.path.realpath(where))
    if kind is not None and kind != "btrfs":
        raise Fail(EXIT_USAGE, f"{where} is on {kind}, not btrfs: a btrfs dataset is restored into a directory on btrfs")
    if make:
        os.mkdir(target, 0o755)
    return target


# JavaScript's \s (zbk is TypeScript; FORMAT.md section 11b says "white space"): not Python's, which also has \x1c-\x1f and \x85.
JS_SPACE = "[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
NAME_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _utf16(s):
    """`s` as UTF-16 code units (bytes): how zbk compares, counts and cuts names."""
    return s.encode("utf-16-le", "surrogatepass")


def _usv(s):
    """`s` as the file name zbk (Node) writes: a lone surrogate becomes U+FFFD."""
    return _utf16(s).decode("utf-16-le", "replace")


def valid_restore_name(n):
    """One path component zbk accepts as a subvolume name (FORMAT.md section 11b)."""
    return (n != "" and n not in (".", "..") and "/" not in n and not n.startswith("-")
            and not NAME_CONTROL.search(n) and not re.search(JS_SPACE, n) and len(_usv(n).encode("utf-8")) <= 255)


def restored_names(chain):
    """{to guid: name in TARGET} (FORMAT.md section 11b): the last '/'-separated component of each snapshot's
    name when those are all different and valid names; otherwise, for every one, its whole name with '/' as '_',
    leading '-' and '.' removed, white space as '_' ('snapshot' if empty), cut to 200 characters (UTF-16 code
    units), then '-' and the first 8 hex digits of its to.guid as a UUID."""
    last = [s.to["name"].rsplit("/", 1)[-1] for s in chain]
    if len({_utf16(b) for b in last}) == len(last) and all(valid_restore_name(b) for b in last):
        return {s.to["guid"]: _usv(b) for s, b in zip(chain, last)}
    out = {}
    for s in chain:
        stem = re.sub(JS_SPACE, "_", re.sub(r"^[-.]+", "", s.to["name"].replace("/", "_"))) or "snapshot"
        name = _utf16(stem)[:400].decode("utf-16-le", "surrogatepass") + "-" + guid_uuid(s.to["guid"])[:8]
        if not valid_restore_name(name):
            raise Fail(EXIT_FAIL, f"@{s.to['name']} gives no valid name in the target: {name!r} has a control character or more than 255 bytes")
        out[s.to["guid"]] = _usv(name)
    return out


def received_uuid(btrfs, path):
    """The "Received UUID:" of `btrfs subvolume show PATH` (lowercase), or None when it has none ("-")."""
    r = zfs_run(btrfs, ["subvolume", "show", path])
    m = re.search(r"^\s*Received UUID:\s*(\S+)\s*$", r.stdout, re.M)
    if not m:
        raise Fail(EXIT_ZFS, f"{' '.join(btrfs)} subvolume show {path} gives no Received UUID line")
    return None if m.group(1) == "-" else m.group(1).lower()


def restore_btrfs(repo, keystore, ds, snap, chain, args):
    btrfs = shlex.split(args.btrfs)
    names = restored_names(chain)
    if len(set(names.values())) != len(names):
        raise Fail(EXIT_FAIL, f"{ds}@{snap}: the snapshots of its chain do not give distinct names in the target ({', '.join(s.to['name'] for s in chain)})")
    target = os.path.abspath(args.target)
    print(f"restoring {ds}@{snap} into {target}: " + " -> ".join(f"@{s.to['name']} ({s.id})" for s in chain), file=sys.stderr)
    if args.dry_run:
        for s in chain:
            print(" ".join(btrfs + ["receive", shlex.quote(target)]) + f"   < stream {s.id}; then the new subvolume (received UUID {guid_uuid(s.to['guid'])}) -> {shlex.quote(os.path.join(target, names[s.to['guid']]))}")
        return
    target = btrfs_target(target)
    done = []
    for s in chain:
        final = os.path.join(target, names[s.to["guid"]])
        want = guid_uuid(s.to["guid"])
        print(f"  receiving {s.label()} ({fmt_size(s.rec['plaintextSize'])})", file=sys.stderr)
        held = f"; {target} holds " + ", ".join(done) + " from the streams before it" if done else ""
        if os.path.lexists(final):
            raise Fail(EXIT_FAIL, f"{final} exists before its stream is received{held}")
        before = set(os.listdir(target))
        try:
            receive(repo, keystore, s, btrfs, ["receive", target], what="btrfs receive")
        except Fail as e:
            left = sorted(set(os.listdir(target)) - before)
            gone = []
            for n in left:  # what the failed receive created: never a finished snapshot
                if zfs_run(btrfs, ["subvolume", "delete", os.path.join(target, n)], check=False).returncode == 0:
                    gone.append(n)
            kept = [n for n in left if n not in gone]
            e.message += (f" — what it had received ({', '.join(gone)}) was deleted" if gone else " — nothing of it is in the target")
            if kept:
                e.message += f"; could not delete {', '.join(os.path.join(target, n) for n in kept)}: delete it by hand"
            e.message += held
            raise
        new = sorted(set(os.listdir(target)) - before)
        if len(new) != 1:
            raise Fail(EXIT_ZFS, f"btrfs receive into {target} of stream {s.id} succeeded but created {len(new)} entries ({', '.join(new)}), not one subvolume{held}")
        got = os.path.join(target, new[0])
        uuid = received_uuid(btrfs, got)
        if uuid != want:
            raise Fail(EXIT_INTEGRITY, f"{got}, received from stream {s.id} ({s.label()}), has received UUID {uuid or '(none)'}, but the record says {want}: "
                       f"not the snapshot recorded (do not use it){held}")
        os.rename(got, final)
        done.append(names[s.to["guid"]])
    print(f"done: {ds}@{snap} is {os.path.join(target, names[chain[-1].to['guid']])} (read-only; btrfs subvolume snapshot it for a writable copy)", file=sys.stderr)


def mirror_stamp(path):
    """(mirror.key, mirror.seq) sealed in a mirror database, or None (a mirror from before sequences)."""
    import sqlite3
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = dict(con.execute("SELECT key, value FROM kv WHERE key IN ('mirror.key', 'mirror.seq')").fetchall())
    except sqlite3.Error:
        return None
    finally:
        con.close()
    try:
        key, seq = json.loads(rows["mirror.key"]), json.loads(rows["mirror.seq"])
    except (KeyError, ValueError):
        return None
    return (key, seq) if isinstance(key, str) and isinstance(seq, int) else None


def cmd_manifest(repo, keystore, args):
    mirrors = sorted((k for k in repo.keys("manifest/") if MIRROR_KEY.match(k)), reverse=True)
    skipped = []
    for key in mirrors:
        data = repo.read_all(key)
        pos = [0]

        def read(n):
            b = data[pos[0]:pos[0] + n]
            pos[0] += n
            return b
        try:
            plain = b"".join(open_container(read, len(data), BLOB_MAGIC, lambda kid: keystore.need(kid, key).meta, blob_ad(KIND_MANIFEST), key))
        except Fail as e:
            skipped.append(f"{key}: {e.message}")
            continue
        if not plain.startswith(b"SQLite format 3\0"):
            skipped.append(f"{key}: not an SQLite database")
            continue
        tmp = args.out + ".part"
        with open(tmp, "wb") as f:
            f.write(plain)
        # FORMAT.md section 14: the mirror seals its own key and sequence; a copy under another
        # name (renamed, or replayed as a newer one) is refused.
        claimed = MIRROR_KEY.match(key).group(1)
        stamp = mirror_stamp(tmp)
        if (claimed is None and stamp is not None) or (claimed is not None and (stamp is None or stamp != (key, int(claimed)))):
            os.unlink(tmp)
            skipped.append(f"{key}: its name does not match the key and sequence sealed inside (renamed or replayed copy)")
            continue
        os.replace(tmp, args.out)
        print(f"{key} -> {args.out} ({len(plain)} bytes, SQLite)", file=sys.stderr)
        return
    raise Fail(EXIT_MISSING, "no manifest mirror opens" + (": " + "; ".join(skipped) if skipped else " (none in DIR); it is optional: list/cat/restore use the stream records"))


# ---------------------------------------------------------------------------
# Self-test against FORMAT.md section 20

def doc_blocks(text):
    vec = re.search(r"<!-- zbk-test-vectors:begin -->\s*```text\n(.*?)```", text, re.S)
    if not vec:
        raise Fail(EXIT_FAIL, "no test vectors in the document")
    v = dict(re.findall(r"^(\w+) = ([A-Za-z0-9_-]+)$", vec.group(1), re.M))

    def block(name):
        m = re.search(rf"<!-- {name}:begin -->\s*```text\n(.*?)```\s*<!-- {name}:end -->", text, re.S)
        if not m:
            raise Fail(EXIT_FAIL, f"no {name} block in the document")
        return m.group(1)
    meta_json = re.search(r"seals:\s*```json\n(.*?)\n```", text, re.S).group(1)
    return v, block, meta_json


def cmd_selftest(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    v, block, meta_json = doc_blocks(text)
    results = []

    def check(name, ok):
        results.append((name, bool(ok)))

    mk = bytes.fromhex(v["master_key"])
    k = Keys(mk, "vector")
    check("key_id", k.key_id.hex() == v["key_id"])
    check("subkeys", (k.data.hex(), k.meta.hex(), k.names.hex()) == (v["subkey_data"], v["subkey_metadata"], v["subkey_names"]))
    check("paper key", decode_paper_key(block("zbk-paper-vector")) == mk)
    check("key file", unwrap_key_file(block("zbk-keyfile-vector").encode(), "vector", "correct horse battery staple") == mk)
    salt = bytes(range(0x40, 0x50))
    check("kek", argon2id(b"correct horse battery staple", salt, 1, 8192).hex() == v["kek"])
    nfd = bytes.fromhex(v["passphrase_nfd"]).decode("utf-8")
    check("kek_nfc", argon2id(unicodedata.normalize("NFC", nfd).encode(), salt, 1, 8192).hex() == v["kek_nfc"])
    sid = bytes(range(0xF0, 0x100))
    store = {k.key_id: k}

    def keys_for(kid):
        return store[kid].data

    def opened(hexdata, magic, ad, subkey):
        data = bytes.fromhex(hexdata)
        pos = [0]

        def read(n):
            b = data[pos[0]:pos[0] + n]
            pos[0] += n
            return b
        return b"".join(open_container(read, len(data), magic, lambda kid: subkey, ad, "vector"))
    check("part_small", opened(v["part_small"], PART_MAGIC, part_ad(sid, 2, 3, True), k.data) == b"zbk test vector\n")
    check("part_empty", opened(v["part_empty"], PART_MAGIC, part_ad(sid, 2, 3, True), k.data) == b"")
    try:
        opened(v["part_small"], PART_MAGIC, part_ad(sid, 2, 3, False), k.data)
        check("part_small refused as non-final", False)
    except Fail:
        check("part_small refused as non-final", True)
    two_plain = bytes(i % 251 for i in range(262144 + 100))
    two = seal_container(k.data, PART_MAGIC, k.key_id, salt, part_ad(sid, 2, 4, False), two_plain)
    check("part_two_chunks", hashlib.sha256(two).hexdigest() == v["part_two_chunks_sha256"] and two[-116:].hex() == v["part_two_chunks_tail"]
          and opened(two.hex(), PART_MAGIC, part_ad(sid, 2, 4, False), k.data) == two_plain)
    check("blob_stream_record", opened(v["blob_stream_record"], BLOB_MAGIC, blob_ad(KIND_STREAM), k.meta) == b'{"v":1}')
    meta = base64.urlsafe_b64decode(v["volume_metadata"] + "=" * (-len(v["volume_metadata"]) % 4))
    # The JSON padded with spaces to min(ceil(j / 256) * 256, 1447) bytes (FORMAT.md section 13).
    j = len(meta_json.encode())
    padded = meta_json.encode() + b" " * (min(-(-j // 256) * 256, 1447) - j)
    check("volume_metadata", meta[:5] == b"ZBKM\x01" and meta[5:13] == k.key_id
          and aead_open(k.meta, meta[13:37], meta[:37], meta[37:]) == padded)
    check("opaque_name", blake2b(b"dataset\0tank/photos", 16, key=k.names).hex() == v["opaque_name"])

    # The stream vector as a repository directory, read by the same code as a real one.
    with tempfile.TemporaryDirectory() as d:
        sidhex = sid.hex()
        files = {"zbk.key": block("zbk-keyfile-vector").encode(), f"streams/{sidhex}.zbks": bytes.fromhex(v["stream_record"])}
        for name, value in v.items():
            m = re.fullmatch(r"stream_volume_(\d+)", name)
            if m:
                files[f"data/{sidhex}/{int(m.group(1)):06d}.zbkv"] = bytes.fromhex(value)
        for key, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(d, key)) or d, exist_ok=True)
            with open(os.path.join(d, key), "wb") as f:
                f.write(data)
        repo = Repo(d)
        ks = KeyStore(repo, passphrase="correct horse battery staple")
        cat = Catalog(repo, ks)
        s = cat.find(sidhex)
        check("stream record", json.dumps(s.rec, separators=(",", ":")) + "\n" == block("zbk-stream-record-vector") and not cat.problems)
        got = []
        write_stream(repo, ks, s, got.extend)
        check("stream", b"".join(got) == bytes.fromhex(v["stream_plaintext"]))
        # The vector stream is an incremental whose base no stream ends at: a broken chain.
        try:
            chain_for(cat, "tank/photos", "autosnap_2024-02-01", True)
            check("broken chain found", False)
        except Fail as e:
            check("broken chain found", e.code == EXIT_MISSING and "broken chain" in e.message)
    width = max(len(n) for n, _ in results)
    for name, ok in results:
        print(f"{name.ljust(width)}  {'ok' if ok else 'FAILED'}")
    if not all(ok for _, ok in results):
        raise Fail(EXIT_INTEGRITY, "selftest: this decoder disagrees with the document")


# ---------------------------------------------------------------------------

def main(argv):
    p = argparse.ArgumentParser(prog="zbk-recover.py", description="Read a zbk repository without zbk (docs/FORMAT.md).",
                                epilog="Exit codes: 0 ok, 1 other failure, 2 usage, 3 missing object, 4 wrong passphrase or key, "
                                       "5 no such dataset/snapshot/stream, 6 integrity failure, 7 zfs (or btrfs) failed, 130 interrupted.")
    p.add_argument("dir", help="the repository directory (the bucket prefix's keys as files), or 'selftest'")
    p.add_argument("command", nargs="?", help="list | keys | cat | restore | manifest")
    p.add_argument("args", nargs="*")
    p.add_argument("--paper-key", metavar="FILE", help="the paper key sheet (zbk key export); '-' for stdin")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase file (first line); default $ZBK_PASSPHRASE_FILE")
    p.add_argument("--json", action="store_true", help="list: JSON output")
    p.add_argument("--zfs", default=os.environ.get("ZBK_ZFS", "zfs"), help="restore: the zfs command, e.g. 'sudo zfs' (default: zfs)")
    p.add_argument("--btrfs", default=os.environ.get("ZBK_BTRFS", "btrfs"), help="restore of a btrfs dataset: the btrfs command, e.g. 'sudo btrfs' (default: btrfs)")
    p.add_argument("--no-mount", action="store_true", help="restore: leave the target unmounted (ZFS)")
    p.add_argument("--dry-run", action="store_true", help="restore: print the chain and the zfs (or btrfs) commands only")
    a = p.parse_args(argv)

    if a.dir == "selftest":
        doc = a.command or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "FORMAT.md")
        cmd_selftest(doc)
        return
    need = {"list": 0, "keys": 1, "cat": 1, "restore": 2, "manifest": 1}
    if a.command not in need or len(a.args) != need[a.command]:
        raise Fail(EXIT_USAGE, "usage: zbk-recover.py DIR list | keys DATASET@SNAPSHOT | cat STREAM | restore DATASET@SNAPSHOT TARGET (a new ZFS dataset, or a directory on btrfs) | manifest OUT.db  (or: selftest [FORMAT.md]); see --help")
    if a.command == "keys":
        a.snapshot = a.args[0]
    elif a.command == "cat":
        a.stream = a.args[0]
    elif a.command == "restore":
        a.snapshot, a.target = a.args
    elif a.command == "manifest":
        a.out = a.args[0]

    load_nacl()
    repo = Repo(a.dir)
    if a.paper_key:
        try:
            text = sys.stdin.read() if a.paper_key == "-" else open(a.paper_key, encoding="utf-8", errors="replace").read()
        except OSError as e:
            raise Fail(EXIT_USAGE, f"cannot read the paper key {a.paper_key}: {e.strerror}")
        keystore = KeyStore(repo, paper_key=decode_paper_key(text))
    else:
        path = a.passphrase_file or os.environ.get("ZBK_PASSPHRASE_FILE") or None
        if path:
            pw = read_passphrase_file(path)
        elif sys.stdin.isatty():
            pw = getpass.getpass("zbk passphrase: ")
            if pw == "":
                raise Fail(EXIT_USAGE, "empty passphrase")
        else:
            raise Fail(EXIT_USAGE, "no passphrase: set ZBK_PASSPHRASE_FILE, or give --passphrase-file FILE or --paper-key FILE")
        keystore = KeyStore(repo, passphrase=pw)
    {"list": cmd_list, "keys": cmd_keys, "cat": cmd_cat, "restore": cmd_restore, "manifest": cmd_manifest}[a.command](repo, keystore, a)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Fail as e:
        print(f"zbk-recover: {e.message}", file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        print("zbk-recover: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        try:
            sys.stdout = None
        finally:
            print("zbk-recover: the output was closed before the end", file=sys.stderr)
            sys.exit(EXIT_FAIL)
    except OSError as e:
        print(f"zbk-recover: {e}", file=sys.stderr)
        sys.exit(EXIT_FAIL)
