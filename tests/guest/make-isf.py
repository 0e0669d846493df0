# Writes a Volatility 3 ISF JSON (the format of dwarf2json: metadata, base_types, user_types, enums, symbols) for the
# few kernel types and symbols the Linux layer uses, from the DWARF of a vmlinux with debug info (Debian's
# linux-image-<version>-dbg), read through gdb's own DWARF reader. It is the independent source of layouts for the
# -Profile tests: our BTF parser never sees it.
#
#   gdb -batch -nx -ex "python out='profile.json'" -x tests/guest/make-isf.py /usr/lib/debug/boot/vmlinux-<version>
#
# Struct and union types are written for the roots below and for every struct or union they hold by value (so that
# dotted paths such as cred.uid.val resolve); types reached only through pointers are named, not defined.
# Anonymous members are named unnamed_field_<offset> with "anonymous": true, as dwarf2json names them.
import base64
import gdb
import hashlib
import json
import os

ROOTS = ["task_struct", "mm_struct", "cred", "module", "mod_kallsyms", "kernel_symbol", "kthread", "cpuinfo_x86", "list_head"]
SYMBOLS = ["_text", "_stext", "init_task", "modules", "linux_banner", "init_top_pgt", "boot_cpu_data"]

base_types = {"void": {"size": 0, "signed": False, "kind": "void", "endian": "little"}}
user_types = {}
enums = {}
pending = []


def type_name(t):
    t = t.strip_typedefs().unqualified()
    code = t.code
    if code == gdb.TYPE_CODE_PTR:
        base_types.setdefault("pointer", {"size": t.sizeof, "signed": False, "kind": "int", "endian": "little"})
        target = t.target().strip_typedefs().unqualified()
        if target.code in (gdb.TYPE_CODE_FUNC,):
            return {"kind": "pointer", "subtype": {"kind": "function"}}
        if target.code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            kind = "struct" if target.code == gdb.TYPE_CODE_STRUCT else "union"
            return {"kind": "pointer", "subtype": {"kind": kind, "name": aggregate_name(target, define=False)}}
        return {"kind": "pointer", "subtype": type_name(target)}
    if code == gdb.TYPE_CODE_ARRAY:
        lo, hi = t.range()
        return {"kind": "array", "count": max(hi - lo + 1, 0), "subtype": type_name(t.target())}
    if code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        return {"kind": "struct" if code == gdb.TYPE_CODE_STRUCT else "union", "name": aggregate_name(t, define=True)}
    if code == gdb.TYPE_CODE_ENUM:
        name = t.tag or "unnamed_" + hashlib.sha1(str(t.fields()[0].name if t.fields() else "").encode()).hexdigest()[:16]
        if name not in enums:
            constants = {f.name: int(f.enumval) for f in t.fields()}
            enums[name] = {"size": t.sizeof, "base": "int" if any(v < 0 for v in constants.values()) else "unsigned int", "constants": constants}
        return {"kind": "enum", "name": name}
    if code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_BOOL, gdb.TYPE_CODE_CHAR, gdb.TYPE_CODE_FLT):
        name = t.name or "int"
        if name not in base_types:
            kind = {gdb.TYPE_CODE_BOOL: "bool", gdb.TYPE_CODE_CHAR: "char", gdb.TYPE_CODE_FLT: "float"}.get(code, "int")
            signed = getattr(t, "is_signed", not name.startswith("unsigned"))  # Type.is_signed: gdb 12+
            base_types[name] = {"size": t.sizeof, "signed": bool(signed), "kind": kind, "endian": "little"}
        return {"kind": "base", "name": name}
    if code == gdb.TYPE_CODE_FUNC:
        return {"kind": "function"}
    return {"kind": "base", "name": "void"}


unnamed = {}


def aggregate_name(t, define):
    if t.tag:
        name = t.tag
    else:
        key = str(t) + "|" + ",".join("%s:%d" % (f.name, f.bitpos) for f in t.fields())
        name = unnamed.setdefault(key, "unnamed_" + hashlib.sha1(key.encode()).hexdigest()[:16])
    if define and name not in user_types and all(name != p[0] for p in pending):
        pending.append((name, t))
    return name


def define(name, t):
    fields = {}
    for f in t.fields():
        if not hasattr(f, "bitpos"):
            continue
        desc = type_name(f.type)
        if f.bitsize:
            size = f.type.strip_typedefs().sizeof
            offset = (f.bitpos // (8 * size)) * size
            entry = {"offset": offset, "type": {"kind": "bitfield", "bit_position": f.bitpos - offset * 8, "bit_length": f.bitsize, "type": desc}}
        else:
            entry = {"offset": f.bitpos // 8, "type": desc}
        if f.name:
            fields[f.name] = entry
        else:
            entry["anonymous"] = True
            fields["unnamed_field_%x" % entry["offset"]] = entry
    user_types[name] = {"size": t.sizeof, "fields": fields, "kind": "struct" if t.code == gdb.TYPE_CODE_STRUCT else "union"}


for root in ROOTS:
    aggregate_name(gdb.lookup_type("struct " + root), define=True)
while pending:
    n, ty = pending.pop(0)
    if n not in user_types:
        define(n, ty)

symbols = {}
for s in SYMBOLS:
    try:
        address = int(gdb.parse_and_eval("(unsigned long)&%s" % s))
    except gdb.error:
        continue
    symbols[s] = {"address": address}
if "linux_banner" in symbols:
    raw = bytes(gdb.selected_inferior().read_memory(symbols["linux_banner"]["address"], 512))
    symbols["linux_banner"]["constant_data"] = base64.b64encode(raw[: raw.index(b"\0") + 1]).decode()

doc = {
    "metadata": {
        "format": "6.2.0",
        "producer": {"name": "vmi-make-isf", "version": "1"},
        "linux": {"symbols": [{"kind": "dwarf", "name": os.path.basename(gdb.current_progspace().filename)}],
                  "types": [{"kind": "dwarf", "name": os.path.basename(gdb.current_progspace().filename)}]},
    },
    "base_types": base_types,
    "user_types": user_types,
    "enums": enums,
    "symbols": symbols,
}
with open(out, "w") as fh:
    json.dump(doc, fh, indent=1, sort_keys=True)
print("make-isf: %d user types, %d symbols -> %s" % (len(user_types), len(symbols), out))
