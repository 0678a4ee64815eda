/* The operations every x86 layer spells the same way, through its MN_X(op) (the op's
 * intrinsic for this width and element type) and MN_XI(op) (the same for integer lanes
 * of the element's width). */
#define V_LOAD(p) MN_X(loadu)(p)
#define V_STORE(p, x) MN_X(storeu)(p, x)
#define V_SET1(x) MN_X(set1)(x)
#define V_ZERO() MN_X(setzero)()
#define V_ADD(a, b) MN_X(add)(a, b)
#define V_SUB(a, b) MN_X(sub)(a, b)
#define V_MUL(a, b) MN_X(mul)(a, b)
#define V_DIV(a, b) MN_X(div)(a, b)
#define V_MIN(a, b) MN_X(min)(a, b)
/* 2^n from t = n + MN_ROUND_MAGIC (see mn_vexp_neg): t's low bits hold n, so n is an
 * integer subtraction away, and 2^n's bits are (n + bias) << mantissa bits. */
#define V_POW2I(t) MN_FROM_INT(MN_XI(slli)(MN_XI(add)(MN_XI(sub)(MN_AS_INT(t), \
    MN_AS_INT(V_SET1((T)MN_ROUND_MAGIC))), MN_SET1_I(MN_EXP_BIAS)), MN_MANT_BITS))
