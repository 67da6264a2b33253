#!/usr/bin/env python3
"""Checks the machine code of the 256-bit int8 kernel (src/kernels/cpu/int8_micro_ymm.hpp), for
a CPU that cannot run its VEX form (not a test: it reads a build's object file with objdump).

The kernel is one template instantiated twice, on the encoding of `vpdpbusd ymm`: VexDot
(AVX-VNNI, what Alder Lake and later client CPUs run) and EvexDot (AVX512-VNNI + AVX512VL,
which the tests run on CPUs without AVX-VNNI). The tests then vouch for the VEX instantiation
only if it is the EVEX one but for that instruction's encoding, and if it contains no AVX-512
instruction (those CPUs have none). This checks both:
  - every instruction of the VexDot functions is VEX or legacy-encoded (no EVEX prefix 0x62),
    and their vpdpbusd are all VEX;
  - the VexDot and EvexDot functions are the same instructions on the same registers in the
    same order, once vpdpbusd's encoding, addresses and branch targets are set aside;
  - the AVX2 activation quantiser has no EVEX instruction either.

  /usr/bin/python3 tools/check_int8_ymm_code.py build/CMakeFiles/varcode.dir/src/kernels/cpu/gemm_int8.cpp.o
"""
import re
import subprocess
import sys

LEGACY_PREFIXES = {"66", "f2", "f3", "2e", "3e", "26", "64", "65", "36", "67"}


def functions(obj):
    """{demangled name: [(raw bytes, instruction text)]} for every function in obj."""
    out = subprocess.run(["objdump", "-d", "-C", "--insn-width=15", obj], capture_output=True, text=True,
                         check=True).stdout
    result, name = {}, None
    for line in out.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if head:
            name = head.group(1)
            result[name] = []
            continue
        parts = line.split("\t")
        if name and len(parts) >= 3:
            result[name].append((parts[1].split(), parts[2].strip()))
    return result


def is_evex(raw):
    i = 0
    while i < len(raw) and raw[i] in LEGACY_PREFIXES:
        i += 1
    return i < len(raw) and raw[i] == "62"


def comparable(insn):
    """The instruction without what legitimately differs between the two instantiations."""
    insn = re.sub(r"^\{(vex|evex)\} ", "", insn)
    insn = re.sub(r"\s*#.*$", "", insn)  # rip-relative constant addresses
    insn = re.sub(r"\s*<.*>$", "", insn)
    return re.sub(r"^(j[a-z]+|jmp|call)\s.*", r"\1", insn)  # branch targets


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    funcs = functions(sys.argv[1])
    vex = {n: f for n, f in funcs.items() if "int8::ymm::" in n and "VexDot" in n}
    evex = {n: f for n, f in funcs.items() if "int8::ymm::" in n and "EvexDot" in n}
    quantiser = {n: f for n, f in funcs.items() if "quantize_row_avx2" in n}
    if not vex or len(vex) != len(evex) or not quantiser:
        sys.exit(f"expected the ymm kernel's functions: {len(vex)} VexDot, {len(evex)} EvexDot, "
                 f"{len(quantiser)} quantize_row_avx2")
    failures = []
    for group in (vex, quantiser):
        for name, body in group.items():
            bad = [insn for raw, insn in body if is_evex(raw)]
            if bad:
                failures.append(f"{name}: {len(bad)} EVEX instructions, e.g. {bad[0]}")
    dots = [(raw, insn) for body in vex.values() for raw, insn in body if "vpdpbusd" in insn]
    if not dots:
        failures.append("no vpdpbusd in the VexDot functions")
    for name, body in vex.items():
        twin = evex.get(name.replace("VexDot", "EvexDot"))
        if twin is None:
            failures.append(f"{name}: no EvexDot twin")
            continue
        if [comparable(i) for _, i in body] != [comparable(i) for _, i in twin]:
            failures.append(f"{name}: differs from its EvexDot twin beyond vpdpbusd's encoding")
    print(f"{len(vex)} VexDot functions ({len(dots)} vpdpbusd, all VEX: {not any(is_evex(r) for r, _ in dots)}), "
          f"{len(evex)} EvexDot twins, {len(quantiser)} AVX2 quantiser")
    for f in failures:
        print("FAIL:", f)
    if failures:
        sys.exit(1)
    print("OK: the VEX instantiation is the EVEX one but for vpdpbusd's encoding, with no AVX-512 instruction")


if __name__ == "__main__":
    main()
