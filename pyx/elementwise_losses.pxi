# The built-in elementwise losses: each one's table row and its math, one loss after another.
# Included by pyx/elementwise.pyx.tp (the driver); both are rendered and compiled by setup.py.
#
# A loss is a row, a comment starting "#@" (continued on the next "#@" lines), directly followed by
# the functions the row names:
#
#   #@ loss(kernel="Huber", element="huber", options=[("double", "delta")], operands=2,
#   #@      hessian="huber_h")
#
# setup.py reads the rows (literals only; a row naming a function this file does not define is a build
# error) and hands them, in file order, to the driver template and to the type stub
# lossengine/_elementwise.pyi.tp. From a row the driver generates the option struct <kernel>Op, its
# member of the fused type the driver is specialized on, the dispatch to the functions below, the
# entry points and the Python-visible kernel class lossengine._elementwise.<kernel>, whose __init__
# takes the options by name. The keys:
#
#   kernel    the kernel class's name; the declaration in lossengine/losses/elementwise.py names it
#   element   ``cdef inline double f(const <kernel>Op* op, const double* a, double g, double* d)``:
#             a[k] are the element's operands (arguments, then option arrays such as weights), g the
#             upstream gradient of this element's loss (grad_output, with 'mean''s 1/N folded in),
#             d[k] receives g * d loss / d a[k], the return value is the element's loss
#   options   [(C type, name)], the fields of <kernel>Op, in the order __init__ takes them (default [])
#   operands  how many operands the element reads, 2 to 4
#   hessian   optional: ``cdef inline double f_h(const <kernel>Op* op, const double* a, double g,
#             double* d, double* h)``, the element function plus h[0] = g * d^2 loss / d a[0]^2 (the
#             input's; an elementwise loss's Hessian is diagonal). A kernel with one gets the driver's
#             Hessian mode (gradient_hessian); the others refuse it.
#   domain    optional: ``cdef inline int f(const <kernel>Op* op, const double* a)``, the bitmask of
#             the operands outside the domain torch accepts (bit k: operand k); the declaration's
#             domain_errors maps bits to torch's messages. Checked in the kernel's pass.
#   variant   optional: ``cdef inline int f(const <kernel>Op* op)``, 0 to 3, a case of the options
#             fixed for the whole call (Tweedie's power: general, 0, 1 or 2). The driver branches on
#             it once per chunk and runs one copy of the math loop per case, in which the case is a
#             compile-time constant handed to the element and Hessian functions as their last
#             argument ``const int variant``: branches on options that hold calls (exp) are resolved
#             before the loop, so each copy vectorizes. (GCC 12 cannot vectorize a select on a
#             combination of loop-invariant conditions, so branch-free selects on the options do not.)
#   rerun_input_only
#             optional, True: when more than the input's gradient is asked for, the driver runs
#             the input-only copy of the math loop again for the input's gradient and the values,
#             so that they are the common call's to the bit where GCC vectorizes the two copies at
#             different widths (the row says why it needs it). Costs only that rare call a loop.
#   math32    optional, True: the row's functions are written over ``real_t`` (pyx/_vecmath32.pxd;
#             ``real_t`` wherever the signatures above say double, the math through r_exp, r_log,
#             r_log1p, r_expm1, r_fabs, r_pow and constants declared real_t, so that no double
#             literal widens a float expression), and float32 inputs run them in float, on the
#             float32 polynomials: twice double's vector lanes and bits that do not depend on the
#             ISA variant. Without it float32 elements are computed in double, as float64 ones.
#             float64 inputs run the double specialization, which is the same math as before.
#
# The element function applies g itself, in the order torch's backward does, because the order
# matters at the edges: 2 g diff stays finite where 2 diff overflows (MSE at 1e308), g / var where
# 1 / var does (GaussianNLL at a denormal var), and a branch torch masks with where() gives 0 even for
# g = NaN (HingeEmbedding). Each formula follows torch 2.13's CPU kernel or autograd formula, quirks
# included (noted inline). Functions are written branch-light (selects, one shared exp) so that GCC
# if-converts and vectorizes the driver's math loop; exp, log, log1p and expm1 get libmvec's vector
# variants there in double (the driver declares them), pyx/_vecmath32.pxd's polynomials in float.
#
# A loss whose value, gradient and Hessian share work (one exp) writes only its Hessian function,
# and its element function is the one-line wrapper ``return f_h(op, a, g, d, &unused)``: once
# inlined, the unused Hessian is dead code, so the plain pass pays nothing for it.
# Where the loss is piecewise linear in the input (L1, pinball, hinge, KLDiv, MarginRanking, Huber's
# and SmoothL1's linear parts) the true second derivative is 0 (and undefined at the kinks, where 0 is
# returned too): that is what the Hessian functions return. Boosting needs a positive Hessian there;
# the integrations (lossengine/integrations) substitute the loss's declared ``hessian_surrogate``,
# never this file.

from libc.math cimport exp, expm1, log, log1p, fabs, pow, NAN, M_PI
from _vecmath32 cimport real_t, r_exp, r_log, r_log1p, r_expm1, r_fabs, r_pow


# -- shared helpers --------------------------------------------------------------------------------
cdef inline double _sign(double x) noexcept nogil:
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


cdef inline real_t _logistic_variance(real_t x) noexcept nogil:
    # sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2 with e = exp(-|x|): symmetric in x, no cancellation.
    cdef real_t e = r_exp(-r_fabs(x)), one = 1.0
    return e / ((one + e) * (one + e))


# -- L1Loss --------------------------------------------------------------------------------------
#@ loss(kernel="L1", element="l1", operands=2, hessian="l1_h")
cdef inline double l1(const L1Op* op, const double* a, double g, double* d) noexcept nogil:
    cdef double diff = a[0] - a[1]
    d[0] = _sign(diff) * g
    d[1] = -d[0]
    return fabs(diff)


cdef inline double l1_h(const L1Op* op, const double* a, double g, double* d, double* h) noexcept nogil:
    h[0] = 0.0
    return l1(op, a, g, d)


# -- MSELoss -------------------------------------------------------------------------------------
#@ loss(kernel="MSE", element="mse", operands=2, hessian="mse_h")
cdef inline double mse(const MSEOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double diff = a[0] - a[1]
    d[0] = 2.0 * g * diff       # torch: (2 / N) grad_output diff
    d[1] = -d[0]
    return diff * diff


cdef inline double mse_h(const MSEOp* op, const double* a, double g, double* d, double* h) noexcept nogil:
    h[0] = 2.0 * g
    return mse(op, a, g, d)


# -- SmoothL1Loss --------------------------------------------------------------------------------
#@ loss(kernel="SmoothL1", element="smooth_l1", options=[("double", "beta")], operands=2,
#@      hessian="smooth_l1_h")
cdef inline double smooth_l1(const SmoothL1Op* op, const double* a, double g, double* d) noexcept nogil:
    # torch: beta == 0 dispatches to l1_loss (so the gradient at diff == 0 is 0, not x / 0).
    if op.beta == 0.0:
        return l1(NULL, a, g, d)
    cdef double diff = a[0] - a[1]
    cdef double z = fabs(diff)
    d[0] = -g if diff <= -op.beta else (g if diff >= op.beta else g * diff / op.beta)
    d[1] = -d[0]
    return 0.5 * z * z / op.beta if z < op.beta else z - 0.5 * op.beta


cdef inline double smooth_l1_h(const SmoothL1Op* op, const double* a, double g, double* d,
                               double* h) noexcept nogil:
    h[0] = g / op.beta if op.beta > 0.0 and fabs(a[0] - a[1]) < op.beta else 0.0
    return smooth_l1(op, a, g, d)


# -- HuberLoss -----------------------------------------------------------------------------------
#@ loss(kernel="Huber", element="huber", options=[("double", "delta")], operands=2,
#@      hessian="huber_h")
cdef inline double huber(const HuberOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double diff = a[0] - a[1]
    cdef double z = fabs(diff)
    d[0] = g * (-op.delta if diff <= -op.delta else (op.delta if diff >= op.delta else diff))
    d[1] = -d[0]
    return 0.5 * z * z if z < op.delta else op.delta * (z - 0.5 * op.delta)


cdef inline double huber_h(const HuberOp* op, const double* a, double g, double* d, double* h) noexcept nogil:
    h[0] = g if fabs(a[0] - a[1]) < op.delta else 0.0
    return huber(op, a, g, d)


# -- BCELoss -------------------------------------------------------------------------------------
#@ loss(kernel="BCE", element="bce", operands=3, hessian="bce_h", domain="bce_domain", math32=True)
cdef double BCE_GRAD_EPS = <float>1e-12


cdef inline real_t bce(const BCEOp* op, const real_t* a, real_t g, real_t* d) noexcept nogil:
    # torch: each log is clamped at -100; the input gradient divides by max(x (1 - x), eps) where eps
    # is 1e-12 rounded to float32 (9.99999996e-13), in float64 too; the target gradient is -logit(x),
    # unclamped.
    cdef real_t x = a[0], y = a[1], w = a[2], one = 1.0, floor = -100.0, eps = BCE_GRAD_EPS
    cdef real_t log_x = r_log(x), log_1mx = r_log1p(-x)
    if log_x < floor:
        log_x = floor
    if log_1mx < floor:
        log_1mx = floor
    cdef real_t denom = (one - x) * x
    if denom < eps:
        denom = eps
    d[0] = g * (x - y) / denom * w
    d[1] = -g * w * r_log(x / (one - x))
    d[2] = 0.0
    return w * ((y - one) * log_1mx - y * log_x)


cdef inline real_t bce_h(const BCEOp* op, const real_t* a, real_t g, real_t* d, real_t* h) noexcept nogil:
    # d/dx of torch's w (x - y) / max(x (1 - x), eps): w / eps where the clamp holds, else
    # w (y / x^2 + (1 - y) / (1 - x)^2) written over the one denominator.
    cdef real_t x = a[0], one = 1.0, two = 2.0, eps = BCE_GRAD_EPS
    cdef real_t denom = (one - x) * x
    h[0] = g * (a[2] / eps if denom < eps else
                a[2] * (denom - (x - a[1]) * (one - two * x)) / (denom * denom))
    return bce(op, a, g, d)


cdef inline int bce_domain(const BCEOp* op, const real_t* a) noexcept nogil:
    # torch checks input, then target, each in [0, 1] (NaN fails).
    return (not (a[0] >= 0.0 and a[0] <= 1.0)) | ((not (a[1] >= 0.0 and a[1] <= 1.0)) << 1)


# -- BCEWithLogitsLoss ---------------------------------------------------------------------------
#@ loss(kernel="BCEWithLogits", element="bce_with_logits", options=[("bint", "has_pos_weight")],
#@      operands=4, hessian="bce_with_logits_h", math32=True, variant="bce_with_logits_variant")
cdef inline int bce_with_logits_variant(const BCEWithLogitsOp* op) noexcept nogil:
    return 1 if op.has_pos_weight else 0


cdef inline real_t bce_with_logits(const BCEWithLogitsOp* op, const real_t* a, real_t g,
                                   real_t* d, const int variant) noexcept nogil:
    # variant 1: pos_weight given (a constant in each copy of the math loop).
    # loss = w ((1 - y) x - (1 + (p - 1) y) log_sigmoid(x)), torch's form, finite at |x| = 1e4.
    # One exp(-|x|) serves log_sigmoid(x), log_sigmoid(-x) and sigmoid(x) (the kernel's hot cost).
    cdef real_t x = a[0], y = a[1], w = a[2] * g, p = a[3], zero = 0.0, one = 1.0
    cdef real_t z = r_exp(-r_fabs(x))
    cdef real_t log1p_z = r_log1p(z)
    cdef real_t ls = (x if x < zero else zero) - log1p_z          # log_sigmoid(x)
    cdef real_t sig = (one if x >= zero else z) / (one + z)    # a select, not a mispredicted branch
    cdef real_t t
    if variant == 1:
        t = p * y
        d[0] = w * ((t + one - y) * sig - t)
        d[1] = w * (((-x) if x > zero else zero) - log1p_z - ls * p)   # log_sigmoid(-x) - p log_sigmoid(x)
        ls = ls * ((p - one) * y + one)
    else:
        d[0] = w * (sig - y)
        d[1] = -w * x          # exact; log_sigmoid(-x) - log_sigmoid(x) would cancel near 0
    return a[2] * ((one - y) * x - ls)


cdef inline real_t bce_with_logits_h(const BCEWithLogitsOp* op, const real_t* a, real_t g, real_t* d,
                                     real_t* h, const int variant) noexcept nogil:
    # d/dx of w ((t + 1 - y) sigmoid(x) - t), t = p y (t = y without pos_weight).
    cdef real_t one = 1.0
    h[0] = g * a[2] * _logistic_variance(a[0]) * ((a[3] * a[1] + one - a[1]) if variant == 1 else one)
    return bce_with_logits(op, a, g, d, variant)


# -- SoftMarginLoss ------------------------------------------------------------------------------
#@ loss(kernel="SoftMargin", element="soft_margin", operands=2, hessian="soft_margin_h", math32=True)
cdef inline real_t soft_margin(const SoftMarginOp* op, const real_t* a, real_t g, real_t* d) noexcept nogil:
    # log(1 + exp(v)), v = -x y, as max(v, 0) + log1p(exp(-|v|)): exact for every v, where torch's
    # log1p(exp(v)) overflows for v > 709. The one exp also gives sigmoid(v); no branch, so the
    # math loop vectorizes.
    cdef real_t x = a[0], y = a[1], v = -x * y, zero = 0.0, one = 1.0
    cdef real_t z = r_exp(-r_fabs(v))
    d[0] = -g * y * (one if v >= zero else z) / (one + z)
    return (v if v > zero else zero) + r_log1p(z)


cdef inline real_t soft_margin_h(const SoftMarginOp* op, const real_t* a, real_t g, real_t* d,
                                 real_t* h) noexcept nogil:
    h[0] = g * a[1] * a[1] * _logistic_variance(a[0] * a[1])
    return soft_margin(op, a, g, d)


# -- KLDivLoss -----------------------------------------------------------------------------------
#@ loss(kernel="KLDiv", element="kl_div", options=[("bint", "log_target")], operands=2,
#@      hessian="kl_div_h", math32=True, variant="kl_div_variant")
cdef inline int kl_div_variant(const KLDivOp* op) noexcept nogil:
    return 1 if op.log_target else 0


cdef inline real_t kl_div(const KLDivOp* op, const real_t* a, real_t g, real_t* d, const int variant) noexcept nogil:
    # variant 1: log_target (a constant in each copy of the math loop).
    cdef real_t x = a[0], t = a[1], et, one = 1.0
    if variant == 1:
        et = r_exp(t)
        d[0] = -g * et
        d[1] = g * et * (t - x + one)
        return et * (t - x)
    d[0] = -g * t
    # torch differentiates xlogy(t, t) by autograd: log(t) + t / t, which is NaN at t == 0.
    d[1] = NAN if t == 0.0 else g * (r_log(t) + one - x)
    if t == 0.0:
        return -t * x           # xlogy(0, 0) = 0
    return t * r_log(t) - t * x


cdef inline real_t kl_div_h(const KLDivOp* op, const real_t* a, real_t g, real_t* d, real_t* h,
                           const int variant) noexcept nogil:
    h[0] = 0.0                  # linear in the input
    return kl_div(op, a, g, d, variant)


# -- PoissonNLLLoss ------------------------------------------------------------------------------
#@ loss(kernel="PoissonNLL", element="poisson_nll",
#@      options=[("bint", "log_input"), ("bint", "full"), ("double", "eps")], operands=2,
#@      hessian="poisson_nll_h", rerun_input_only=True, math32=True, variant="poisson_nll_variant")
# rerun_input_only: on the baseline ISA GCC vectorizes the input-only loop two elements at a time and
# the full one four, so a chunk's last elements met the vector exp in one and the scalar exp in the
# other, and backward(target too) differed from backward() in the last bit (issue #25). Making every
# call take the full loop instead cost the common call 1.4x; this costs only the rare one its second
# loop.
cdef inline int poisson_nll_variant(const PoissonNLLOp* op) noexcept nogil:
    return (1 if op.log_input else 0) | (2 if op.full else 0)


cdef inline real_t poisson_nll(const PoissonNLLOp* op, const real_t* a, real_t g, real_t* d,
                               const int variant) noexcept nogil:
    # variant (a constant in each copy of the math loop): bit 0 log_input, bit 1 full.
    # eps and 2 pi in the input's precision, as torch's scalars meet a float32 tensor.
    cdef real_t x = a[0], y = a[1], value, log_xe, eps = op.eps, half = 0.5, two_pi = 2.0 * M_PI
    if variant & 1:
        value = r_exp(x) - y * x
        d[0] = g * r_exp(x) - g * y
        d[1] = -g * x
    else:
        log_xe = r_log(x + eps)
        value = x - y * log_xe
        d[0] = g - g * y / (x + eps)     # torch: the upstream reaches 1 / (x + eps) already scaled
        d[1] = -g * log_xe
    if variant & 2:
        # Stirling term only where y > 1 (masked_fill). Autograd still multiplies the masked zero by
        # log(y) and 1/y, so torch's target gradient is NaN where y <= 0.
        if y > 1.0:
            value = value + y * r_log(y) - y + half * r_log(two_pi * y)
            d[1] = d[1] + g * (r_log(y) + half / y)
        elif not (y > 0.0):
            d[1] = NAN
    return value


cdef inline real_t poisson_nll_h(const PoissonNLLOp* op, const real_t* a, real_t g, real_t* d,
                                 real_t* h, const int variant) noexcept nogil:
    cdef real_t eps = op.eps
    h[0] = g * (r_exp(a[0]) if variant & 1 else a[1] / ((a[0] + eps) * (a[0] + eps)))
    return poisson_nll(op, a, g, d, variant)


# -- GaussianNLLLoss -----------------------------------------------------------------------------
#@ loss(kernel="GaussianNLL", element="gaussian_nll", options=[("bint", "full"), ("double", "eps")],
#@      operands=3, hessian="gaussian_nll_h", domain="gaussian_nll_domain", math32=True)
cdef inline real_t gaussian_nll(const GaussianNLLOp* op, const real_t* a, real_t g, real_t* d) noexcept nogil:
    # torch clamps var at eps under no_grad: the clamped value is used, the gradient flows as if
    # unclamped (d/dvar uses the clamped value even where var < eps). Autograd's order: the upstream
    # g / 2 is divided by var before it meets diff, so a denormal var with a small g stays finite.
    cdef real_t diff = a[0] - a[1], eps = op.eps, half = 0.5, half_log_2pi = 0.5 * log(2.0 * M_PI)
    cdef real_t v = a[2]
    if v < eps:
        v = eps
    cdef real_t h = half * g
    cdef real_t r = h / v * diff
    d[0] = r + r
    d[1] = -d[0]
    d[2] = h / v - r * (diff / v)
    cdef real_t value = half * (r_log(v) + diff * diff / v)
    if op.full:
        value = value + half_log_2pi
    return value


cdef inline real_t gaussian_nll_h(const GaussianNLLOp* op, const real_t* a, real_t g, real_t* d,
                                  real_t* h) noexcept nogil:
    cdef real_t eps = op.eps
    h[0] = g / (a[2] if a[2] >= eps else eps)
    return gaussian_nll(op, a, g, d)


cdef inline int gaussian_nll_domain(const GaussianNLLOp* op, const real_t* a) noexcept nogil:
    return (a[2] < 0.0) << 2


# -- HingeEmbeddingLoss --------------------------------------------------------------------------
#@ loss(kernel="HingeEmbedding", element="hinge_embedding", options=[("double", "margin")],
#@      operands=2, hessian="hinge_embedding_h")
cdef inline double hinge_embedding(const HingeEmbeddingOp* op, const double* a, double g,
                                   double* d) noexcept nogil:
    # torch: where(y != 1, clamp_min(margin - x, 0), 0) + where(y != -1, x, 0), so a target outside
    # {1, -1} gets both terms. clamp_min's gradient passes at margin - x == 0. A masked branch
    # contributes an exact 0, even for g = NaN (torch's where()).
    cdef double x = a[0], y = a[1], m = op.margin - x
    cdef double value = 0.0
    d[0] = 0.0
    d[1] = 0.0
    if y != 1.0:
        value = 0.0 if m < 0.0 else m
        if m >= 0.0:
            d[0] = -g
    if y != -1.0:
        value = value + x
        d[0] = d[0] + g
    return value


cdef inline double hinge_embedding_h(const HingeEmbeddingOp* op, const double* a, double g, double* d,
                                     double* h) noexcept nogil:
    h[0] = 0.0
    return hinge_embedding(op, a, g, d)


# -- MarginRankingLoss ---------------------------------------------------------------------------
#@ loss(kernel="MarginRanking", element="margin_ranking", options=[("double", "margin")],
#@      operands=3, hessian="margin_ranking_h")
cdef inline double margin_ranking(const MarginRankingOp* op, const double* a, double g,
                                  double* d) noexcept nogil:
    # torch: clamp_min(-y (x1 - x2) + margin, 0); clamp_min's gradient passes at 0 and is an exact
    # 0 on the clamped side (even for g = NaN). The target is not differentiated.
    cdef double y = a[2], z = -y * (a[0] - a[1]) + op.margin
    d[2] = 0.0
    if z >= 0.0:
        d[0] = -y * g
        d[1] = y * g
        return z
    d[0] = 0.0
    d[1] = 0.0
    return 0.0 if z < 0.0 else z        # NaN propagates to the value


cdef inline double margin_ranking_h(const MarginRankingOp* op, const double* a, double g, double* d,
                                    double* h) noexcept nogil:
    h[0] = 0.0                  # piecewise linear in input1
    return margin_ranking(op, a, g, d)


# -- sigmoid focal loss --------------------------------------------------------------------------
#@ loss(kernel="SigmoidFocal", element="sigmoid_focal",
#@      options=[("double", "alpha"), ("double", "gamma")], operands=2, hessian="sigmoid_focal_h",
#@      math32=True, variant="sigmoid_focal_variant")
cdef inline int sigmoid_focal_variant(const SigmoidFocalOp* op) noexcept nogil:
    # gamma 0, 1, 2 (2 the default): q^gamma and its derivatives without pow, so the loop vectorizes.
    return 1 if op.gamma == 0.0 else (2 if op.gamma == 1.0 else (3 if op.gamma == 2.0 else 0))



cdef inline real_t sigmoid_focal_h(const SigmoidFocalOp* op, const real_t* a, real_t g, real_t* d,
                                   real_t* h, const int variant) noexcept nogil:
    # torchvision.ops.sigmoid_focal_loss (Lin et al., "Focal Loss for Dense Object Detection", 2017):
    #   loss = a_t ce q^gm, ce = BCE-with-logits(x, y), q = 1 - p_t = s (1 - y) + (1 - s) y, s = sigmoid(x),
    #   a_t = alpha y + (1 - alpha)(1 - y) (1 when alpha < 0), gm = gamma.
    # dq/dx = s(1-s)(1-2y), d2q/dx2 = dq/dx (1 - 2s); dce/dx = s - y, d2ce/dx2 = s(1-s). s and 1 - s
    # both come from one exp(-|x|), so neither cancels where the focal factor is tiny. alpha and gamma
    # in the input's precision, as torchvision's Python scalars meet a float32 tensor.
    cdef real_t x = a[0], y = a[1], gm = op.gamma, alpha = op.alpha, zero = 0.0, one = 1.0, two = 2.0
    cdef real_t e = r_exp(-r_fabs(x))
    cdef real_t s = (one if x >= zero else e) / (one + e)
    cdef real_t sc = (e if x >= zero else one) / (one + e)
    cdef real_t ce = (x if x > zero else zero) - x * y + r_log1p(e)
    cdef real_t q = s * (one - y) + sc * y
    cdef real_t ss = s * sc
    cdef real_t dq = ss * (one - two * y)
    cdef real_t at = one, dat = zero
    if alpha >= zero:
        at = alpha * y + (one - alpha) * (one - y)
        dat = two * alpha - one
    # q^gm, gm q^(gm-1) and gm (gm-1) q^(gm-2), the last two 0 at q == 0 (where every term they
    # multiply vanishes for gm >= 1). variant (sigmoid_focal_variant): 1: gm = 0, 2: gm = 1, 3: gm = 2,
    # written without pow (pow(q, 2) is q q correctly rounded, as the product is); 0: any other gm.
    cdef real_t qg, qg1, qg2
    if variant == 1:
        qg, qg1, qg2 = one, zero, zero
    elif variant == 2:
        qg, qg1, qg2 = q, (one if q > zero else zero), zero
    elif variant == 3:
        qg, qg1, qg2 = q * q, (two * q if q > zero else zero), (two if q > zero else zero)
    else:
        qg = r_pow(q, gm)
        qg1 = gm * r_pow(q, gm - one) if q > zero and gm != zero else zero
        qg2 = gm * (gm - one) * r_pow(q, gm - two) if q > zero and gm != zero and gm != one else zero
    d[0] = at * ((s - y) * qg + ce * qg1 * dq) * g
    d[1] = (dat * ce * qg + at * (-x * qg + ce * qg1 * (sc - s))) * g
    h[0] = at * (ss * qg + two * (s - y) * qg1 * dq + ce * qg2 * dq * dq + ce * qg1 * dq * (sc - s)) * g
    return at * ce * qg


cdef inline real_t sigmoid_focal(const SigmoidFocalOp* op, const real_t* a, real_t g, real_t* d,
                                 const int variant) noexcept nogil:
    cdef real_t unused
    return sigmoid_focal_h(op, a, g, d, &unused, variant)


# -- pinball loss --------------------------------------------------------------------------------
#@ loss(kernel="Pinball", element="pinball", options=[("double", "quantile")], operands=2,
#@      hessian="pinball_h")
cdef inline double pinball_h(const PinballOp* op, const double* a, double g, double* d, double* h) noexcept nogil:
    # scikit-learn's PinballLoss (Koenker & Bassett 1978), input the prediction: q (y - x) where
    # y >= x, else (1 - q)(x - y). Its second derivative is 0 (undefined at y == x).
    cdef double x = a[0], y = a[1]
    d[0] = (-op.quantile if y >= x else 1.0 - op.quantile) * g
    d[1] = -d[0]
    h[0] = 0.0
    return op.quantile * (y - x) if y >= x else (1.0 - op.quantile) * (x - y)


cdef inline double pinball(const PinballOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double unused
    return pinball_h(op, a, g, d, &unused)


# -- half Poisson deviance -----------------------------------------------------------------------
#@ loss(kernel="HalfPoisson", element="half_poisson", operands=2, hessian="half_poisson_h", math32=True)
cdef inline real_t half_poisson_h(const HalfPoissonOp* op, const real_t* a, real_t g, real_t* d,
                                  real_t* h) noexcept nogil:
    # scikit-learn's HalfPoissonLoss, log link: exp(x) - y x (the half deviance minus y log y - y).
    cdef real_t ex = r_exp(a[0])
    d[0] = (ex - a[1]) * g
    d[1] = -a[0] * g
    h[0] = ex * g
    return ex - a[1] * a[0]


cdef inline real_t half_poisson(const HalfPoissonOp* op, const real_t* a, real_t g, real_t* d) noexcept nogil:
    cdef real_t unused
    return half_poisson_h(op, a, g, d, &unused)


# -- half Gamma deviance -------------------------------------------------------------------------
#@ loss(kernel="HalfGamma", element="half_gamma", operands=2, hessian="half_gamma_h", math32=True)
cdef inline real_t half_gamma_h(const HalfGammaOp* op, const real_t* a, real_t g, real_t* d,
                                real_t* h) noexcept nogil:
    # scikit-learn's HalfGammaLoss, log link: x + y exp(-x) (the half deviance minus log y + 1).
    cdef real_t e = r_exp(-a[0]), one = 1.0
    d[0] = (one - a[1] * e) * g
    d[1] = e * g
    h[0] = a[1] * e * g
    return a[0] + a[1] * e


cdef inline real_t half_gamma(const HalfGammaOp* op, const real_t* a, real_t g, real_t* d) noexcept nogil:
    cdef real_t unused
    return half_gamma_h(op, a, g, d, &unused)


# -- half Tweedie deviance -----------------------------------------------------------------------
#@ loss(kernel="HalfTweedie", element="half_tweedie", options=[("double", "power")],
#@      operands=2, hessian="half_tweedie_h", variant="half_tweedie_variant", math32=True)
cdef inline int half_tweedie_variant(const HalfTweedieOp* op) noexcept nogil:
    return 1 if op.power == 0.0 else (2 if op.power == 1.0 else (3 if op.power == 2.0 else 0))


cdef inline real_t half_tweedie_h(const HalfTweedieOp* op, const real_t* a, real_t g, real_t* d,
                                  real_t* h, const int variant) noexcept nogil:
    # scikit-learn's HalfTweedieLoss, log link, power p (Jorgensen 1997; sklearn's closs_half_tweedie):
    # exp((2-p) x) / (2-p) - y exp((1-p) x) / (1-p); p = 0 is 0.5 (exp(x) - y)^2, p = 1 Poisson, p = 2 Gamma.
    # variant (half_tweedie_variant, a constant in each copy of the math loop): 1: p = 0, 2: p = 1,
    # 3: p = 2, 0: any other power.
    # 1 - p and 2 - p are rounded once to the input's precision.
    cdef real_t x = a[0], y = a[1], e1, e2, p1 = 1.0 - op.power, p2 = 2.0 - op.power, two = 2.0, half = 0.5
    if variant == 2:
        return half_poisson_h(NULL, a, g, d, h)
    if variant == 3:
        return half_gamma_h(NULL, a, g, d, h)
    if variant == 1:
        e1 = r_exp(x)
        d[0] = e1 * (e1 - y) * g
        d[1] = (y - e1) * g
        h[0] = e1 * (two * e1 - y) * g
        return half * (e1 - y) * (e1 - y)
    e1 = r_exp(p1 * x)
    e2 = r_exp(p2 * x)
    d[0] = (e2 - y * e1) * g
    d[1] = -e1 / p1 * g
    h[0] = (p2 * e2 - p1 * y * e1) * g
    return e2 / p2 - y * e1 / p1


cdef inline real_t half_tweedie(const HalfTweedieOp* op, const real_t* a, real_t g, real_t* d,
                                const int variant) noexcept nogil:
    cdef real_t unused
    return half_tweedie_h(op, a, g, d, &unused, variant)


# -- log-cosh loss -------------------------------------------------------------------------------
#@ loss(kernel="LogCosh", element="log_cosh", options=[("double", "scale")], operands=2,
#@      hessian="log_cosh_h", math32=True)
cdef inline real_t log_cosh_h(const LogCoshOp* op, const real_t* a, real_t g, real_t* d, real_t* h) noexcept nogil:
    # With u = |z| and m = expm1(-2u) in (-1, 0] (as the example plugin did):
    #   log cosh z = u + log1p(m / 2)   (no overflow at any u),
    #   tanh u = -m / (2 + m)   (no cancellation near 0),
    #   sech^2 z = 4 e / (1 + e)^2 with e = exp(-2u), not 1 + m, which cancels for large u (the Hessian
    #   mode's own exp: -fno-math-errno lets the plain pass drop it with the unused Hessian).
    # u + log1p(m/2) cancels below u = 0.03 (log cosh z ~ z^2/2); there the Taylor series
    # z^2/2 - z^4/12 + z^6/45 - 17 z^8/2520 takes over (truncation < 1e-14 relative). Selects only.
    # In float32 the cancellation (2/u times the rounding) costs more: the series, one term longer
    # (+ 31 z^10/14175), runs below u = 0.25 (truncation < 1e-9 relative; above it the formula's
    # error stays under 2e-6 relative).
    cdef real_t z = a[0] - a[1], u = r_fabs(z), zero = 0.0, one = 1.0, two = 2.0, half = 0.5
    cdef real_t scale = op.scale, four = 4.0, switch = 0.03
    cdef real_t m = r_expm1(-two * u)
    cdef real_t t = -m / (two + m)
    cdef real_t u2 = u * u
    cdef real_t c4 = -1.0 / 12.0, c6 = 1.0 / 45.0, c8 = -17.0 / 2520.0, c10 = 31.0 / 14175.0
    cdef real_t series
    if real_t is float:
        series = u2 * (half + u2 * (c4 + u2 * (c6 + u2 * (c8 + u2 * c10))))
        switch = 0.25
    else:
        series = u2 * (half + u2 * (c4 + u2 * (c6 + u2 * c8)))
    cdef real_t e = r_exp(-two * u)
    d[0] = scale * (t if z >= zero else -t) * g
    d[1] = -d[0]
    h[0] = scale * four * e / ((one + e) * (one + e)) * g
    return scale * (series if u < switch else u + r_log1p(half * m))


cdef inline real_t log_cosh(const LogCoshOp* op, const real_t* a, real_t g, real_t* d) noexcept nogil:
    cdef real_t unused
    return log_cosh_h(op, a, g, d, &unused)
