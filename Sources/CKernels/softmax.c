// Row softmax, in place, numerically stable (max subtracted before exp).
#include "isa.h"
#include "CKernels.h"

PD_INLINE void softmax_body(float *x, int n, long ld, long r0, long r1, int causal,
                            long row_offset) {
    for (long r = r0; r < r1; r++) {
        float *row = x + r * ld;
        long valid = n;
        if (causal) {
            valid = r + row_offset + 1;
            if (valid > n) valid = n;
            if (valid < 0) valid = 0;
        }
        // Lane-wise max and sum so the loops vectorise without reassociation flags.
        float mx[16], sm[16];
        for (int l = 0; l < 16; l++) { mx[l] = -INFINITY; sm[l] = 0; }
        long i = 0;
        for (; valid - i >= 16; i += 16)
            for (int l = 0; l < 16; l++) mx[l] = row[i + l] > mx[l] ? row[i + l] : mx[l];
        float m = -INFINITY;
        for (int l = 0; l < 16; l++) m = mx[l] > m ? mx[l] : m;
        for (; i < valid; i++) m = row[i] > m ? row[i] : m;
        if (valid == 0 || m == -INFINITY) m = 0;  // empty or all -inf row: avoid inf - inf

        i = 0;
        for (; valid - i >= 16; i += 16)
            for (int l = 0; l < 16; l++) {
                float e = pd_expf(row[i + l] - m);
                row[i + l] = e;
                sm[l] += e;
            }
        double total = 0;
        for (int l = 0; l < 16; l++) total += sm[l];
        for (; i < valid; i++) { float e = pd_expf(row[i] - m); row[i] = e; total += e; }

        const float inv = total > 0 ? (float)(1.0 / total) : 0.0f;
        for (long j = 0; j < valid; j++) row[j] *= inv;
        for (long j = valid; j < n; j++) row[j] = 0.0f;
    }
}

PD_MULTIVERSION(pd_softmax_rows, softmax_body,
                (float *x, int n, long ld, long r0, long r1, int causal, long row_offset),
                (x, n, ld, r0, r1, causal, row_offset))
