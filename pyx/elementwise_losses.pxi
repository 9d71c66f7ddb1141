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
#
# The element function applies g itself, in the order torch's backward does, because the order
# matters at the edges: 2 g diff stays finite where 2 diff overflows (MSE at 1e308), g / var where
# 1 / var does (GaussianNLL at a denormal var), and a branch torch masks with where() gives 0 even for
# g = NaN (HingeEmbedding). Each formula follows torch 2.13's CPU kernel or autograd formula, quirks
# included (noted inline). Functions are written branch-light (selects, one shared exp) so that GCC
# if-converts and vectorizes the driver's math loop; exp, log, log1p and expm1 get libmvec's vector
# variants there (the driver declares them).
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


# -- shared helpers --------------------------------------------------------------------------------
cdef inline double _sign(double x) noexcept nogil:
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


cdef inline double _logistic_variance(double x) noexcept nogil:
    # sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2 with e = exp(-|x|): symmetric in x, no cancellation.
    cdef double e = exp(-fabs(x))
    return e / ((1.0 + e) * (1.0 + e))


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
#@ loss(kernel="BCE", element="bce", operands=3, hessian="bce_h", domain="bce_domain")
cdef double BCE_GRAD_EPS = <float>1e-12


cdef inline double bce(const BCEOp* op, const double* a, double g, double* d) noexcept nogil:
    # torch: each log is clamped at -100; the input gradient divides by max(x (1 - x), eps) where eps
    # is 1e-12 rounded to float32 (9.99999996e-13), in float64 too; the target gradient is -logit(x),
    # unclamped.
    cdef double x = a[0], y = a[1], w = a[2]
    cdef double log_x = log(x), log_1mx = log1p(-x)
    if log_x < -100.0:
        log_x = -100.0
    if log_1mx < -100.0:
        log_1mx = -100.0
    cdef double denom = (1.0 - x) * x
    if denom < BCE_GRAD_EPS:
        denom = BCE_GRAD_EPS
    d[0] = g * (x - y) / denom * w
    d[1] = -g * w * log(x / (1.0 - x))
    d[2] = 0.0
    return w * ((y - 1.0) * log_1mx - y * log_x)


cdef inline double bce_h(const BCEOp* op, const double* a, double g, double* d, double* h) noexcept nogil:
    # d/dx of torch's w (x - y) / max(x (1 - x), eps): w / eps where the clamp holds, else
    # w (y / x^2 + (1 - y) / (1 - x)^2) written over the one denominator.
    cdef double x = a[0], denom = (1.0 - x) * x
    h[0] = g * (a[2] / BCE_GRAD_EPS if denom < BCE_GRAD_EPS else
                a[2] * (denom - (x - a[1]) * (1.0 - 2.0 * x)) / (denom * denom))
    return bce(op, a, g, d)


cdef inline int bce_domain(const BCEOp* op, const double* a) noexcept nogil:
    # torch checks input, then target, each in [0, 1] (NaN fails).
    return (not (a[0] >= 0.0 and a[0] <= 1.0)) | ((not (a[1] >= 0.0 and a[1] <= 1.0)) << 1)


# -- BCEWithLogitsLoss ---------------------------------------------------------------------------
#@ loss(kernel="BCEWithLogits", element="bce_with_logits", options=[("bint", "has_pos_weight")],
#@      operands=4, hessian="bce_with_logits_h")
cdef inline double bce_with_logits(const BCEWithLogitsOp* op, const double* a, double g,
                                   double* d) noexcept nogil:
    # loss = w ((1 - y) x - (1 + (p - 1) y) log_sigmoid(x)), torch's form, finite at |x| = 1e4.
    # One exp(-|x|) serves log_sigmoid(x), log_sigmoid(-x) and sigmoid(x) (the kernel's hot cost).
    cdef double x = a[0], y = a[1], w = a[2] * g, p = a[3]
    cdef double z = exp(-fabs(x))
    cdef double log1p_z = log1p(z)
    cdef double ls = (x if x < 0.0 else 0.0) - log1p_z          # log_sigmoid(x)
    cdef double sig = (1.0 if x >= 0.0 else z) / (1.0 + z)    # a select, not a mispredicted branch
    cdef double t
    if op.has_pos_weight:
        t = p * y
        d[0] = w * ((t + 1.0 - y) * sig - t)
        d[1] = w * (((-x) if x > 0.0 else 0.0) - log1p_z - ls * p)   # log_sigmoid(-x) - p log_sigmoid(x)
        ls = ls * ((p - 1.0) * y + 1.0)
    else:
        d[0] = w * (sig - y)
        d[1] = -w * x          # exact; log_sigmoid(-x) - log_sigmoid(x) would cancel near 0
    return a[2] * ((1.0 - y) * x - ls)


cdef inline double bce_with_logits_h(const BCEWithLogitsOp* op, const double* a, double g, double* d,
                                     double* h) noexcept nogil:
    # d/dx of w ((t + 1 - y) sigmoid(x) - t), t = p y (t = y without pos_weight).
    h[0] = g * a[2] * _logistic_variance(a[0]) * ((a[3] * a[1] + 1.0 - a[1]) if op.has_pos_weight else 1.0)
    return bce_with_logits(op, a, g, d)


# -- SoftMarginLoss ------------------------------------------------------------------------------
#@ loss(kernel="SoftMargin", element="soft_margin", operands=2, hessian="soft_margin_h")
cdef inline double soft_margin(const SoftMarginOp* op, const double* a, double g, double* d) noexcept nogil:
    # log(1 + exp(v)), v = -x y, as max(v, 0) + log1p(exp(-|v|)): exact for every v, where torch's
    # log1p(exp(v)) overflows for v > 709. The one exp also gives sigmoid(v); no branch, so the
    # math loop vectorizes.
    cdef double x = a[0], y = a[1], v = -x * y
    cdef double z = exp(-fabs(v))
    d[0] = -g * y * (1.0 if v >= 0.0 else z) / (1.0 + z)
    return (v if v > 0.0 else 0.0) + log1p(z)


cdef inline double soft_margin_h(const SoftMarginOp* op, const double* a, double g, double* d,
                                 double* h) noexcept nogil:
    h[0] = g * a[1] * a[1] * _logistic_variance(a[0] * a[1])
    return soft_margin(op, a, g, d)


# -- KLDivLoss -----------------------------------------------------------------------------------
#@ loss(kernel="KLDiv", element="kl_div", options=[("bint", "log_target")], operands=2,
#@      hessian="kl_div_h")
cdef inline double kl_div(const KLDivOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double x = a[0], t = a[1], et
    if op.log_target:
        et = exp(t)
        d[0] = -g * et
        d[1] = g * et * (t - x + 1.0)
        return et * (t - x)
    d[0] = -g * t
    # torch differentiates xlogy(t, t) by autograd: log(t) + t / t, which is NaN at t == 0.
    d[1] = NAN if t == 0.0 else g * (log(t) + 1.0 - x)
    if t == 0.0:
        return -t * x           # xlogy(0, 0) = 0
    return t * log(t) - t * x


cdef inline double kl_div_h(const KLDivOp* op, const double* a, double g, double* d, double* h) noexcept nogil:
    h[0] = 0.0                  # linear in the input
    return kl_div(op, a, g, d)


# -- PoissonNLLLoss ------------------------------------------------------------------------------
#@ loss(kernel="PoissonNLL", element="poisson_nll",
#@      options=[("bint", "log_input"), ("bint", "full"), ("double", "eps")], operands=2,
#@      hessian="poisson_nll_h", rerun_input_only=True)
# rerun_input_only: on the baseline ISA GCC vectorizes the input-only loop two elements at a time and
# the full one four, so a chunk's last elements met the vector exp in one and the scalar exp in the
# other, and backward(target too) differed from backward() in the last bit (issue #25). Making every
# call take the full loop instead cost the common call 1.4x; this costs only the rare one its second
# loop.
cdef inline double poisson_nll(const PoissonNLLOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double x = a[0], y = a[1], value, log_xe
    if op.log_input:
        value = exp(x) - y * x
        d[0] = g * exp(x) - g * y
        d[1] = -g * x
    else:
        log_xe = log(x + op.eps)
        value = x - y * log_xe
        d[0] = g - g * y / (x + op.eps)     # torch: the upstream reaches 1 / (x + eps) already scaled
        d[1] = -g * log_xe
    if op.full:
        # Stirling term only where y > 1 (masked_fill). Autograd still multiplies the masked zero by
        # log(y) and 1/y, so torch's target gradient is NaN where y <= 0.
        if y > 1.0:
            value = value + y * log(y) - y + 0.5 * log(2.0 * M_PI * y)
            d[1] = d[1] + g * (log(y) + 0.5 / y)
        elif not (y > 0.0):
            d[1] = NAN
    return value


cdef inline double poisson_nll_h(const PoissonNLLOp* op, const double* a, double g, double* d,
                                 double* h) noexcept nogil:
    h[0] = g * (exp(a[0]) if op.log_input else a[1] / ((a[0] + op.eps) * (a[0] + op.eps)))
    return poisson_nll(op, a, g, d)


# -- GaussianNLLLoss -----------------------------------------------------------------------------
#@ loss(kernel="GaussianNLL", element="gaussian_nll", options=[("bint", "full"), ("double", "eps")],
#@      operands=3, hessian="gaussian_nll_h", domain="gaussian_nll_domain")
cdef inline double gaussian_nll(const GaussianNLLOp* op, const double* a, double g, double* d) noexcept nogil:
    # torch clamps var at eps under no_grad: the clamped value is used, the gradient flows as if
    # unclamped (d/dvar uses the clamped value even where var < eps). Autograd's order: the upstream
    # g / 2 is divided by var before it meets diff, so a denormal var with a small g stays finite.
    cdef double diff = a[0] - a[1]
    cdef double v = a[2]
    if v < op.eps:
        v = op.eps
    cdef double h = 0.5 * g
    cdef double r = h / v * diff
    d[0] = r + r
    d[1] = -d[0]
    d[2] = h / v - r * (diff / v)
    cdef double value = 0.5 * (log(v) + diff * diff / v)
    if op.full:
        value = value + 0.5 * log(2.0 * M_PI)
    return value


cdef inline double gaussian_nll_h(const GaussianNLLOp* op, const double* a, double g, double* d,
                                  double* h) noexcept nogil:
    h[0] = g / (a[2] if a[2] >= op.eps else op.eps)
    return gaussian_nll(op, a, g, d)


cdef inline int gaussian_nll_domain(const GaussianNLLOp* op, const double* a) noexcept nogil:
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
#@      options=[("double", "alpha"), ("double", "gamma")], operands=2, hessian="sigmoid_focal_h")
cdef inline double sigmoid_focal_h(const SigmoidFocalOp* op, const double* a, double g, double* d,
                                   double* h) noexcept nogil:
    # torchvision.ops.sigmoid_focal_loss (Lin et al., "Focal Loss for Dense Object Detection", 2017):
    #   loss = a_t ce q^gm, ce = BCE-with-logits(x, y), q = 1 - p_t = s (1 - y) + (1 - s) y, s = sigmoid(x),
    #   a_t = alpha y + (1 - alpha)(1 - y) (1 when alpha < 0), gm = gamma.
    # dq/dx = s(1-s)(1-2y), d2q/dx2 = dq/dx (1 - 2s); dce/dx = s - y, d2ce/dx2 = s(1-s). s and 1 - s
    # both come from one exp(-|x|), so neither cancels where the focal factor is tiny.
    cdef double x = a[0], y = a[1], gm = op.gamma
    cdef double e = exp(-fabs(x))
    cdef double s = (1.0 if x >= 0.0 else e) / (1.0 + e)
    cdef double sc = (e if x >= 0.0 else 1.0) / (1.0 + e)
    cdef double ce = (x if x > 0.0 else 0.0) - x * y + log1p(e)
    cdef double q = s * (1.0 - y) + sc * y
    cdef double ss = s * sc
    cdef double dq = ss * (1.0 - 2.0 * y)
    cdef double at = 1.0, dat = 0.0
    if op.alpha >= 0.0:
        at = op.alpha * y + (1.0 - op.alpha) * (1.0 - y)
        dat = 2.0 * op.alpha - 1.0
    cdef double qg = pow(q, gm)
    # gm q^(gm-1) and gm (gm-1) q^(gm-2), 0 at q == 0 (where every term they multiply vanishes for gm >= 1)
    cdef double qg1 = gm * pow(q, gm - 1.0) if q > 0.0 and gm != 0.0 else 0.0
    cdef double qg2 = gm * (gm - 1.0) * pow(q, gm - 2.0) if q > 0.0 and gm != 0.0 and gm != 1.0 else 0.0
    d[0] = at * ((s - y) * qg + ce * qg1 * dq) * g
    d[1] = (dat * ce * qg + at * (-x * qg + ce * qg1 * (sc - s))) * g
    h[0] = at * (ss * qg + 2.0 * (s - y) * qg1 * dq + ce * qg2 * dq * dq + ce * qg1 * dq * (sc - s)) * g
    return at * ce * qg


cdef inline double sigmoid_focal(const SigmoidFocalOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double unused
    return sigmoid_focal_h(op, a, g, d, &unused)


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
#@ loss(kernel="HalfPoisson", element="half_poisson", operands=2, hessian="half_poisson_h")
cdef inline double half_poisson_h(const HalfPoissonOp* op, const double* a, double g, double* d,
                                  double* h) noexcept nogil:
    # scikit-learn's HalfPoissonLoss, log link: exp(x) - y x (the half deviance minus y log y - y).
    cdef double ex = exp(a[0])
    d[0] = (ex - a[1]) * g
    d[1] = -a[0] * g
    h[0] = ex * g
    return ex - a[1] * a[0]


cdef inline double half_poisson(const HalfPoissonOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double unused
    return half_poisson_h(op, a, g, d, &unused)


# -- half Gamma deviance -------------------------------------------------------------------------
#@ loss(kernel="HalfGamma", element="half_gamma", operands=2, hessian="half_gamma_h")
cdef inline double half_gamma_h(const HalfGammaOp* op, const double* a, double g, double* d,
                                double* h) noexcept nogil:
    # scikit-learn's HalfGammaLoss, log link: x + y exp(-x) (the half deviance minus log y + 1).
    cdef double e = exp(-a[0])
    d[0] = (1.0 - a[1] * e) * g
    d[1] = e * g
    h[0] = a[1] * e * g
    return a[0] + a[1] * e


cdef inline double half_gamma(const HalfGammaOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double unused
    return half_gamma_h(op, a, g, d, &unused)


# -- half Tweedie deviance -----------------------------------------------------------------------
#@ loss(kernel="HalfTweedie", element="half_tweedie", options=[("double", "power")],
#@      operands=2, hessian="half_tweedie_h", variant="half_tweedie_variant")
cdef inline int half_tweedie_variant(const HalfTweedieOp* op) noexcept nogil:
    return 1 if op.power == 0.0 else (2 if op.power == 1.0 else (3 if op.power == 2.0 else 0))


cdef inline double half_tweedie_h(const HalfTweedieOp* op, const double* a, double g, double* d,
                                  double* h, const int variant) noexcept nogil:
    # scikit-learn's HalfTweedieLoss, log link, power p (Jorgensen 1997; sklearn's closs_half_tweedie):
    # exp((2-p) x) / (2-p) - y exp((1-p) x) / (1-p); p = 0 is 0.5 (exp(x) - y)^2, p = 1 Poisson, p = 2 Gamma.
    # variant (half_tweedie_variant, a constant in each copy of the math loop): 1: p = 0, 2: p = 1,
    # 3: p = 2, 0: any other power.
    cdef double p = op.power, x = a[0], y = a[1], e1, e2
    if variant == 2:
        return half_poisson_h(NULL, a, g, d, h)
    if variant == 3:
        return half_gamma_h(NULL, a, g, d, h)
    if variant == 1:
        e1 = exp(x)
        d[0] = e1 * (e1 - y) * g
        d[1] = (y - e1) * g
        h[0] = e1 * (2.0 * e1 - y) * g
        return 0.5 * (e1 - y) * (e1 - y)
    e1 = exp((1.0 - p) * x)
    e2 = exp((2.0 - p) * x)
    d[0] = (e2 - y * e1) * g
    d[1] = -e1 / (1.0 - p) * g
    h[0] = ((2.0 - p) * e2 - (1.0 - p) * y * e1) * g
    return e2 / (2.0 - p) - y * e1 / (1.0 - p)


cdef inline double half_tweedie(const HalfTweedieOp* op, const double* a, double g, double* d,
                                const int variant) noexcept nogil:
    cdef double unused
    return half_tweedie_h(op, a, g, d, &unused, variant)


# -- log-cosh loss -------------------------------------------------------------------------------
#@ loss(kernel="LogCosh", element="log_cosh", options=[("double", "scale")], operands=2,
#@      hessian="log_cosh_h")
cdef inline double log_cosh_h(const LogCoshOp* op, const double* a, double g, double* d, double* h) noexcept nogil:
    # With u = |z| and m = expm1(-2u) in (-1, 0] (as the example plugin did):
    #   log cosh z = u + log1p(m / 2)   (no overflow at any u),
    #   tanh u = -m / (2 + m)   (no cancellation near 0),
    #   sech^2 z = 4 e / (1 + e)^2 with e = exp(-2u), not 1 + m, which cancels for large u (the Hessian
    #   mode's own exp: -fno-math-errno lets the plain pass drop it with the unused Hessian).
    # u + log1p(m/2) cancels below u = 0.03 (log cosh z ~ z^2/2); there the Taylor series
    # z^2/2 - z^4/12 + z^6/45 - 17 z^8/2520 takes over (truncation < 1e-14 relative). Selects only.
    cdef double z = a[0] - a[1], u = fabs(z)
    cdef double m = expm1(-2.0 * u)
    cdef double t = -m / (2.0 + m)
    cdef double u2 = u * u
    cdef double series = u2 * (0.5 + u2 * (-1.0 / 12.0 + u2 * (1.0 / 45.0 + u2 * (-17.0 / 2520.0))))
    cdef double e = exp(-2.0 * u)
    d[0] = op.scale * (t if z >= 0.0 else -t) * g
    d[1] = -d[0]
    h[0] = op.scale * 4.0 * e / ((1.0 + e) * (1.0 + e)) * g
    return op.scale * (series if u < 0.03 else u + log1p(0.5 * m))


cdef inline double log_cosh(const LogCoshOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double unused
    return log_cosh_h(op, a, g, d, &unused)
