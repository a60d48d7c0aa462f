#!/usr/bin/env python3
"""Model of the sm90 forward's synchronisation (src/kernels/attention_fwd_sm90_kernel.cuh), for changing it safely
without a GPU: one CTA's producer lane 0 (K/Q/V loads), producer lanes 1-31 (key biases), the two consumer
warpgroups (each one actor: its wgmma are collective) and the TMA copies (completing later, in any order), run under
random interleavings with random speeds. Checks: no deadlock (a lost arrival or a missed parity phase hangs the
kernel), every named barrier balanced at the end, and every shared-memory read (Q, K, V, bias slot, O staging) sees
the item or tile it means (a stage or slot refilled too early fails). Configurations: the two schedules' ring depth,
Q buffers and K release (kernel_notes.md, v7) over CTAs of 1-5 items of 1-6 key tiles (per tile runs one item a CTA;
several check more than it needs).
Usage: python3 scripts/check_sm90_fwd_protocol.py [seeds]   (2000 seeds: ~12 s of CPU)"""
import random
import sys

class MBar:
    def __init__(s, count): s.count, s.pending, s.tx, s.ph = count, count, 0, 0
    def arrive(s, n=1):
        s.pending -= n; assert s.pending >= 0, "too many arrivals"; s.check()
    def expect_tx(s, b): s.tx += b
    def complete_tx(s, b): s.tx -= b; assert s.tx >= 0; s.check()
    def check(s):
        if s.pending == 0 and s.tx == 0: s.ph += 1; s.pending = s.count
    def done(s, parity): return (s.ph & 1) != parity

class NBar:
    def __init__(s, count): s.count, s.n, s.gen = count, 0, 0
    def arrive(s):
        s.n += 1
        if s.n == s.count: s.n = 0; s.gen += 1

def run(S, QB, early, items, seed, KB=None):
    rnd = random.Random(seed)
    KB = KB or (S + 1 if early else S)
    full_q = [MBar(1) for _ in range(QB)]; empty_q = [MBar(8) for _ in range(QB)]
    full_k = [MBar(32) for _ in range(S)]; full_v = [MBar(1) for _ in range(S)]
    empty_k = [MBar(8) for _ in range(S)]; empty_v = [MBar(8) for _ in range(S)]
    nb = {1: NBar(8), 2: NBar(8)}
    smemK = [None] * S; smemV = [None] * S; smemKb = [None] * KB; smemQ = [[None, None] for _ in range(QB)]
    pending_tma = []  # TMA copies in flight: their completions
    last = len(items) - 1

    def wait(bar, parity):
        while not bar.done(parity): yield
    def tma(cb):
        pending_tma.append(cb)

    def tiles():  # the producer's walk: (item, tile in item, tile count, stage, parity of the stage's release)
        it = 0
        for k, n in enumerate(items):
            for i in range(n):
                yield k, i, it, it % S, ((it // S) & 1) ^ 1
                it += 1
    def lane0():
        for k, i, it, s, par in tiles():
            yield from wait(empty_k[s], par)
            full_k[s].expect_tx(1); full_k[s].arrive()
            tma(lambda s=s, it=it: (smemK.__setitem__(s, it), full_k[s].complete_tx(1)))
            if i == 0:
                qb = k % QB
                yield from wait(empty_q[qb], ((k // QB) & 1) ^ 1)
                full_q[qb].expect_tx(1); full_q[qb].arrive()
                tma(lambda qb=qb, k=k: (smemQ[qb].__setitem__(0, ('Q', k)), smemQ[qb].__setitem__(1, ('Q', k)),
                                        full_q[qb].complete_tx(1)))
            yield from wait(empty_v[s], par)
            full_v[s].expect_tx(1); full_v[s].arrive()
            tma(lambda s=s, it=it: (smemV.__setitem__(s, it), full_v[s].complete_tx(1)))
            yield
    def lanes():
        for k, i, it, s, par in tiles():
            yield from wait(empty_k[s], par)
            smemKb[it % KB] = it; yield
            full_k[s].arrive(31)
    # A consumer warpgroup as one actor: its wgmma are collective (all 4 warps issue, then it runs), so its warps
    # are in step at every product; per-warp releases are 4 arrivals, named-barrier calls 4 warps' worth.
    def consumer(cw):
        def release(bar): bar.arrive(4)
        def sync(b):
            g = nb[b].gen
            for _ in range(4): nb[b].arrive()
            while nb[b].gen == g: yield
        def arrive_nb(b):
            for _ in range(4): nb[b].arrive()
        if cw == 1: arrive_nb(1)
        it = 0
        for k, n in enumerate(items):
            qb = k % QB; last_item = k == last
            def hand(i):
                if not (cw == 1 and last_item and i == n - 1): arrive_nb(2 - cw)
            yield from wait(full_q[qb], (k // QB) & 1)
            def qk(t):
                assert smemQ[qb][cw] == ('Q', k), ("Q", smemQ[qb][cw], k)
                assert smemK[t % S] == t, ("K", smemK[t % S], t)
            def sm(t):
                assert smemKb[t % KB] == t, ("Kb", smemKb[t % KB], t)
            def pv(t):
                assert smemV[t % S] == t, ("V", smemV[t % S], t)
            yield from wait(full_k[it % S], (it // S) & 1)
            yield from sync(1 + cw)
            qk(it); yield
            hand(0)
            qk(it)  # wait<0>: the product read Q, K until here
            if early: release(empty_k[it % S])
            yield; sm(it); yield
            if not early: release(empty_k[it % S])
            for i in range(1, n):
                t = it + i
                yield from wait(full_k[t % S], (t // S) & 1)
                yield from sync(1 + cw)
                qk(t)
                yield from wait(full_v[(t - 1) % S], ((t - 1) // S) & 1)
                pv(t - 1); yield
                hand(i)
                qk(t)  # wait<1>
                if early: release(empty_k[t % S])
                yield; sm(t); yield
                if not early: release(empty_k[t % S])
                pv(t - 1)  # wait<0>
                release(empty_v[(t - 1) % S])
            t = it + n - 1
            yield from wait(full_v[t % S], (t // S) & 1)
            pv(t); yield; pv(t)
            release(empty_v[t % S])
            it += n
            # epilogue: stage O in own rows of the Q buffer, epilogue barrier (4 warps), read, release
            assert smemQ[qb][cw] in (('Q', k), ('O', k, cw))
            smemQ[qb][cw] = ('O', k, cw); yield
            yield
            assert smemQ[qb][cw] == ('O', k, cw), ("O", smemQ[qb][cw], k, cw)
            release(empty_q[qb])
    actors = [lane0(), lanes()] + [consumer(cw) for cw in (0, 1)]
    alive = list(range(len(actors)))
    wts = [rnd.choice([0.02, 0.2, 1.0]) for _ in actors]
    stall = 0
    while alive or pending_tma:
        if pending_tma and rnd.random() < 0.3:
            pending_tma.pop(rnd.randrange(len(pending_tma)))()
            stall = 0; continue
        if not alive:
            continue
        a = rnd.choices(alive, weights=[wts[i] for i in alive])[0]
        try:
            next(actors[a])
        except StopIteration:
            alive.remove(a)
        stall += 1
        if stall > 200000:
            raise RuntimeError("deadlock")
    # balanced named barriers: nothing left half-arrived
    assert nb[1].n == 0 and nb[2].n == 0, (nb[1].n, nb[2].n)

# (stages, Q buffers, early K release): the per-tile and persistent schedules (Sm90FwdSchedTraits).
cfgs = [(2, 1, False), (2, 2, True)]
n = 0
for seed in range(int(sys.argv[1]) if len(sys.argv) > 1 else 300):
    rnd = random.Random(seed * 7 + 1)
    for S, QB, early in cfgs:
        items = [rnd.randint(1, 6) for _ in range(rnd.randint(1, 5))]
        run(S, QB, early, items, seed)
        n += 1
print("ok", n, "runs")
