/* Classic BPF: the validator and interpreter for filters that libpcap compiles (the subset it
 * emits for offline filtering), run by the capture replay over each frame. */
#include "internal.h"

enum {
    BPF_LD = 0x00, BPF_LDX = 0x01, BPF_ST = 0x02, BPF_STX = 0x03,
    BPF_ALU = 0x04, BPF_JMP = 0x05, BPF_RET = 0x06, BPF_MISC = 0x07,
    BPF_W = 0x00, BPF_H = 0x08, BPF_B = 0x10,
    BPF_IMM = 0x00, BPF_ABS = 0x20, BPF_IND = 0x40, BPF_MEM = 0x60, BPF_LEN = 0x80, BPF_MSH = 0xa0,
    BPF_ADD = 0x00, BPF_SUB = 0x10, BPF_MUL = 0x20, BPF_DIV = 0x30, BPF_OR = 0x40, BPF_AND = 0x50,
    BPF_LSH = 0x60, BPF_RSH = 0x70, BPF_NEG = 0x80, BPF_MOD = 0x90, BPF_XOR = 0xa0,
    BPF_JA = 0x00, BPF_JEQ = 0x10, BPF_JGT = 0x20, BPF_JGE = 0x30, BPF_JSET = 0x40,
    BPF_K = 0x00, BPF_X = 0x08, BPF_A = 0x10,
    BPF_TAX = 0x00, BPF_TXA = 0x80,
    BPF_MEMWORDS = 16
};

#define BPF_CLASS(c) ((c) & 0x07)
#define BPF_SIZE(c) ((c) & 0x18)
#define BPF_MODE(c) ((c) & 0xe0)
#define BPF_OP(c) ((c) & 0xf0)
#define BPF_SRC(c) ((c) & 0x08)
#define BPF_RVAL(c) ((c) & 0x18)
#define BPF_MISCOP(c) ((c) & 0xf8)

/* ---- validation (as the kernel's BPF validator) ---- */

static int valid_load(const sp2_bpf_insn *p)
{
    uint16_t c = p->code;
    switch (BPF_MODE(c))
    {
    case BPF_IMM:
    case BPF_LEN:
        return 1;
    case BPF_ABS:
    case BPF_IND:
    case BPF_MSH:
        if (BPF_CLASS(c) == BPF_LDX && BPF_MODE(c) != BPF_MSH)
            return 0;
        if (BPF_MODE(c) == BPF_MSH && (BPF_CLASS(c) != BPF_LDX || BPF_SIZE(c) != BPF_B))
            return 0;
        return BPF_SIZE(c) == BPF_W || BPF_SIZE(c) == BPF_H || BPF_SIZE(c) == BPF_B;
    case BPF_MEM:
        return p->k < BPF_MEMWORDS;
    default:
        return 0;
    }
}

static int valid_alu(const sp2_bpf_insn *p)
{
    switch (BPF_OP(p->code))
    {
    case BPF_ADD: case BPF_SUB: case BPF_MUL: case BPF_OR: case BPF_AND:
    case BPF_LSH: case BPF_RSH: case BPF_NEG: case BPF_XOR:
        return 1;
    case BPF_DIV:
    case BPF_MOD:
        return !(BPF_SRC(p->code) == BPF_K && p->k == 0);
    default:
        return 0;
    }
}

/* Jumps go forward and stay inside the program (`left`: instructions after this one). */
static int valid_jump(const sp2_bpf_insn *p, uint32_t left)
{
    switch (BPF_OP(p->code))
    {
    case BPF_JA:
        return p->k < left;
    case BPF_JEQ: case BPF_JGT: case BPF_JGE: case BPF_JSET:
        return (uint32_t) p->jt < left && (uint32_t) p->jf < left;
    default:
        return 0;
    }
}

static int valid_insn(const sp2_bpf_insn *p, uint32_t left)
{
    switch (BPF_CLASS(p->code))
    {
    case BPF_LD:
    case BPF_LDX:
        return valid_load(p);
    case BPF_ST:
    case BPF_STX:
        return p->k < BPF_MEMWORDS;
    case BPF_ALU:
        return valid_alu(p);
    case BPF_JMP:
        return valid_jump(p, left);
    case BPF_RET:
        return 1;
    case BPF_MISC:
        return BPF_MISCOP(p->code) == BPF_TAX || BPF_MISCOP(p->code) == BPF_TXA;
    default:
        return 0;
    }
}

int sp2_bpf_validate(const sp2_bpf_insn *insns, uint32_t n)
{
    if (n == 0 || n > 65536)
        return -1;
    for (uint32_t pc = 0; pc < n; pc++)
        if (!valid_insn(&insns[pc], n - pc - 1))
            return -1;
    return BPF_CLASS(insns[n - 1].code) == BPF_RET ? 0 : -1;
}

/* ---- running ---- */

typedef struct bpf_machine {
    uint32_t a, x;
    uint32_t mem[BPF_MEMWORDS];
    const uint8_t *frame;
    uint32_t wirelen, caplen;
} bpf_machine;

/* A word, half word or byte of the frame at off; 0 (and the filter rejects) past its end. */
static int load_frame(const bpf_machine *m, uint16_t size, uint32_t off, uint32_t *out)
{
    uint32_t width = size == BPF_W ? 4 : size == BPF_H ? 2 : 1;
    if (off > m->caplen || m->caplen - off < width)
        return 0;
    const uint8_t *p = m->frame + off;
    *out = width == 4 ? sp2_load_be32(p) : width == 2 ? sp2_load_be16(p) : p[0];
    return 1;
}

/* LD and LDX; returns 0 when the filter rejects the frame (a load past its end). */
static int run_load(bpf_machine *m, uint16_t c, uint32_t k)
{
    uint32_t *reg = BPF_CLASS(c) == BPF_LD ? &m->a : &m->x;
    switch (BPF_MODE(c))
    {
    case BPF_IMM: *reg = k; return 1;
    case BPF_LEN: *reg = m->wirelen; return 1;
    case BPF_MEM: *reg = m->mem[k]; return 1;
    case BPF_MSH:     /* 4 * (frame[k] & 0xf) */
        if (k >= m->caplen)
            return 0;
        m->x = (uint32_t) (m->frame[k] & 0xf) << 2;
        return 1;
    case BPF_IND:
        if (m->x > UINT32_MAX - k)
            return 0;
        return load_frame(m, BPF_SIZE(c), k + m->x, &m->a);
    default:          /* ABS */
        return load_frame(m, BPF_SIZE(c), k, &m->a);
    }
}

/* ALU; returns 0 when the filter rejects the frame (a division by zero). */
static int run_alu(bpf_machine *m, uint16_t c, uint32_t k)
{
    uint32_t v = BPF_SRC(c) == BPF_X ? m->x : k;
    switch (BPF_OP(c))
    {
    case BPF_ADD: m->a += v; return 1;
    case BPF_SUB: m->a -= v; return 1;
    case BPF_MUL: m->a *= v; return 1;
    case BPF_DIV: if (v == 0) return 0; m->a /= v; return 1;
    case BPF_MOD: if (v == 0) return 0; m->a %= v; return 1;
    case BPF_OR: m->a |= v; return 1;
    case BPF_AND: m->a &= v; return 1;
    case BPF_XOR: m->a ^= v; return 1;
    case BPF_LSH: m->a = v < 32 ? m->a << v : 0; return 1;
    case BPF_RSH: m->a = v < 32 ? m->a >> v : 0; return 1;
    default: m->a = (uint32_t) -m->a; return 1;    /* NEG */
    }
}

/* How many instructions a jump skips. */
static uint32_t jump_offset(const bpf_machine *m, const sp2_bpf_insn *p)
{
    uint16_t c = p->code;
    if (BPF_OP(c) == BPF_JA)
        return p->k;
    uint32_t v = BPF_SRC(c) == BPF_X ? m->x : p->k;
    int cond;
    switch (BPF_OP(c))
    {
    case BPF_JEQ: cond = m->a == v; break;
    case BPF_JGT: cond = m->a > v; break;
    case BPF_JGE: cond = m->a >= v; break;
    default: cond = (m->a & v) != 0; break;  /* JSET */
    }
    return cond ? p->jt : p->jf;
}

uint32_t sp2_bpf_run(const sp2_bpf_insn *insns, const uint8_t *frame, uint32_t wirelen, uint32_t caplen)
{
    bpf_machine m = {0, 0, {0}, frame, wirelen, caplen};
    for (const sp2_bpf_insn *pc = insns;; pc++)
    {
        uint16_t c = pc->code;
        switch (BPF_CLASS(c))
        {
        case BPF_RET: return BPF_RVAL(c) == BPF_A ? m.a : pc->k;
        case BPF_LD:
        case BPF_LDX: if (!run_load(&m, c, pc->k)) return 0; break;
        case BPF_ST: m.mem[pc->k] = m.a; break;
        case BPF_STX: m.mem[pc->k] = m.x; break;
        case BPF_ALU: if (!run_alu(&m, c, pc->k)) return 0; break;
        case BPF_JMP: pc += jump_offset(&m, pc); break;
        default:          /* MISC */
            if (BPF_MISCOP(c) == BPF_TAX)
                m.x = m.a;
            else
                m.a = m.x;
            break;
        }
    }
}
