/* The XLA FFI handler behind lossengine.integrations.jax: one custom call target,
 * "lossengine_host", whose ``slot`` attribute names a host function registered from Python; it is
 * called as host(operands, results, rank), the lists of NumPy views and the unbatched rank of the
 * first result (the leading axes beyond it are vmap's).
 *
 * Why a handler that calls Python (and not the kernels' C entry points): lossengine's work per call
 * is its argument checks, domain checks and error messages as much as its kernels, and those live in
 * Python; calling them here keeps one code path for NumPy and JAX callers, so JAX gets exactly the
 * validated results and the messages NumPy callers get. What this saves over jax.pure_callback is
 * everything around the call: the operand and result buffers are handed over as NumPy views (no
 * copy in, no copy out; the kernels write the results into XLA's buffers), there is no pytree or
 * dispatch machinery, and an error becomes one XLA error carrying lossengine's message, with no
 * Python traceback in it.
 *
 * Written against XLA's C API (xla/ffi/api/c_api.h, from jax.ffi.include_dir()), so it is plain C.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <string.h>

#include "xla/ffi/api/c_api.h"

/* The registered host functions, indexed by slot; never shrunk (a compiled XLA program may hold a
 * slot for the life of the process). */
static PyObject *hosts = NULL;

static XLA_FFI_Error *ffi_error(const XLA_FFI_Api *api, XLA_FFI_Error_Code code, const char *message)
{
    XLA_FFI_Error_Create_Args args;
    memset(&args, 0, sizeof args);
    args.struct_size = XLA_FFI_Error_Create_Args_STRUCT_SIZE;
    args.message = message;
    args.errc = code;
    return api->XLA_FFI_Error_Create(&args);
}

static int numpy_type(XLA_FFI_DataType dtype)
{
    switch (dtype) {
    case XLA_FFI_DataType_PRED: return NPY_BOOL;
    case XLA_FFI_DataType_S8: return NPY_INT8;
    case XLA_FFI_DataType_S16: return NPY_INT16;
    case XLA_FFI_DataType_S32: return NPY_INT32;
    case XLA_FFI_DataType_S64: return NPY_INT64;
    case XLA_FFI_DataType_U8: return NPY_UINT8;
    case XLA_FFI_DataType_U16: return NPY_UINT16;
    case XLA_FFI_DataType_U32: return NPY_UINT32;
    case XLA_FFI_DataType_U64: return NPY_UINT64;
    case XLA_FFI_DataType_F16: return NPY_FLOAT16;
    case XLA_FFI_DataType_F32: return NPY_FLOAT32;
    case XLA_FFI_DataType_F64: return NPY_FLOAT64;
    default: return -1;          /* bfloat16, float8s, complex: the Python side casts them first */
    }
}

/* The metadata query XLA makes when the handler is registered: the FFI version it was built with. */
static XLA_FFI_Error *metadata(XLA_FFI_CallFrame *frame)
{
    XLA_FFI_Metadata_Extension *extension = (XLA_FFI_Metadata_Extension *)frame->extension_start;
    if (extension->extension_base.struct_size < XLA_FFI_Metadata_Extension_STRUCT_SIZE
            || extension->metadata->struct_size < XLA_FFI_Metadata_STRUCT_SIZE)
        return ffi_error(frame->api, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                         "lossengine_jaxffi: XLA's handler metadata is older than this handler's headers");
    XLA_FFI_Metadata *meta = extension->metadata;
    meta->api_version.struct_size = XLA_FFI_Api_Version_STRUCT_SIZE;
    meta->api_version.extension_start = NULL;
    meta->api_version.major_version = XLA_FFI_API_MAJOR;
    meta->api_version.minor_version = XLA_FFI_API_MINOR;
    meta->traits = 0;
    if (meta->struct_size >= offsetof(XLA_FFI_Metadata, state_type_id) + sizeof meta->state_type_id)
        meta->state_type_id.type_id = 0;             /* stateless */
    return NULL;
}

/* An int64 scalar attribute by name; -1 when absent. */
static int64_t int_attribute(const XLA_FFI_Attrs *attrs, const char *wanted)
{
    size_t length = strlen(wanted);
    for (int64_t i = 0; i < attrs->size; i++) {
        const XLA_FFI_ByteSpan *name = attrs->names[i];
        if (attrs->types[i] != XLA_FFI_AttrType_SCALAR || name->len != length || memcmp(name->ptr, wanted, length) != 0)
            continue;
        const XLA_FFI_Scalar *scalar = (const XLA_FFI_Scalar *)attrs->attrs[i];
        if (scalar->dtype == XLA_FFI_DataType_S64)
            return *(const int64_t *)scalar->value;
    }
    return -1;
}

/* A NumPy view of one XLA buffer: read-only for operands (inputs are never modified), writable for
 * results. NULL with a Python exception set when the dtype has no NumPy equivalent. */
static PyObject *view(const XLA_FFI_Buffer *buffer, int writable)
{
    int type = numpy_type(buffer->dtype);
    if (type < 0) {
        PyErr_Format(PyExc_TypeError, "lossengine_jaxffi: XLA dtype %d has no NumPy equivalent", (int)buffer->dtype);
        return NULL;
    }
    npy_intp dims[NPY_MAXDIMS];
    if (buffer->rank > NPY_MAXDIMS) {
        PyErr_SetString(PyExc_ValueError, "lossengine_jaxffi: too many dimensions");
        return NULL;
    }
    for (int64_t d = 0; d < buffer->rank; d++)
        dims[d] = (npy_intp)buffer->dims[d];
    int flags = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | (writable ? NPY_ARRAY_WRITEABLE : 0);
    return PyArray_New(&PyArray_Type, (int)buffer->rank, dims, type, NULL, buffer->data, 0, flags, NULL);
}

static PyObject *views(void **buffers, int64_t n, int writable)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        PyObject *array = view((const XLA_FFI_Buffer *)buffers[i], writable);
        if (array == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, array);
    }
    return list;
}

/* The pending Python exception as one XLA error: "<Type>: <message>", INVALID_ARGUMENT for what
 * lossengine raises about the caller's data (ValueError, TypeError, IndexError), INTERNAL otherwise.
 * The exception's traceback is dropped: its frames hold views of XLA's buffers, which must not outlive
 * the call. */
static XLA_FFI_Error *python_error(const XLA_FFI_Api *api)
{
    PyObject *type, *exc, *traceback;
    PyErr_Fetch(&type, &exc, &traceback);
    PyErr_NormalizeException(&type, &exc, &traceback);
    Py_XDECREF(traceback);
    Py_XDECREF(type);
    if (exc == NULL)
        return ffi_error(api, XLA_FFI_Error_Code_INTERNAL, "lossengine: an error without an exception");
    XLA_FFI_Error_Code code = (PyErr_GivenExceptionMatches(exc, PyExc_ValueError)
                               || PyErr_GivenExceptionMatches(exc, PyExc_TypeError)
                               || PyErr_GivenExceptionMatches(exc, PyExc_IndexError))
                              ? XLA_FFI_Error_Code_INVALID_ARGUMENT : XLA_FFI_Error_Code_INTERNAL;
    PyException_SetTraceback(exc, Py_None);
    PyObject *text = PyUnicode_FromFormat("lossengine %s: %S", Py_TYPE(exc)->tp_name, exc);
    const char *message = text ? PyUnicode_AsUTF8(text) : NULL;
    XLA_FFI_Error *error = ffi_error(api, code, message ? message : "lossengine: an error without a message");
    PyErr_Clear();
    Py_XDECREF(text);
    Py_DECREF(exc);
    return error;
}

static XLA_FFI_Error *handler(XLA_FFI_CallFrame *frame)
{
    if (frame->extension_start != NULL && frame->extension_start->type == XLA_FFI_Extension_Metadata)
        return metadata(frame);
    if (frame->stage != XLA_FFI_ExecutionStage_EXECUTE)
        return NULL;                                 /* nothing to instantiate, prepare or initialize */
    int64_t slot = int_attribute(&frame->attrs, "slot");
    int64_t rank = int_attribute(&frame->attrs, "rank");
    XLA_FFI_Error *error = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    if (hosts == NULL || slot < 0 || slot >= (int64_t)PyList_GET_SIZE(hosts)) {
        PyGILState_Release(gil);
        return ffi_error(frame->api, XLA_FFI_Error_Code_INVALID_ARGUMENT, "lossengine_jaxffi: unknown slot");
    }
    PyObject *host = PyList_GET_ITEM(hosts, (Py_ssize_t)slot);
    PyObject *ins = views(frame->args.args, frame->args.size, 0);
    PyObject *outs = ins ? views(frame->rets.rets, frame->rets.size, 1) : NULL;
    PyObject *rank_object = outs ? PyLong_FromLongLong(rank) : NULL;
    PyObject *result = rank_object ? PyObject_CallFunctionObjArgs(host, ins, outs, rank_object, NULL) : NULL;
    Py_XDECREF(rank_object);
    if (result == NULL)
        error = python_error(frame->api);
    Py_XDECREF(result);
    Py_XDECREF(outs);
    Py_XDECREF(ins);
    PyGILState_Release(gil);
    return error;
}

static PyObject *py_handler(PyObject *self, PyObject *unused)
{
    return PyCapsule_New((void *)handler, NULL, NULL);
}

static PyObject *py_register(PyObject *self, PyObject *host)
{
    if (!PyCallable_Check(host)) {
        PyErr_SetString(PyExc_TypeError, "register takes a callable host(ins, outs)");
        return NULL;
    }
    if (PyList_Append(hosts, host) < 0)
        return NULL;
    return PyLong_FromSsize_t(PyList_GET_SIZE(hosts) - 1);
}

static PyMethodDef methods[] = {
    {"handler", py_handler, METH_NOARGS,
     "The XLA FFI handler, as a PyCapsule for jax.ffi.register_ffi_target."},
    {"register", py_register, METH_O,
     "register(host) -> slot: host(ins, outs, rank) is called with NumPy views of the operand and result "
     "buffers and the custom call's rank attribute."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_handler", NULL, -1, methods};

PyMODINIT_FUNC PyInit__handler(void)
{
    import_array();
    hosts = PyList_New(0);
    if (hosts == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyModule_AddIntConstant(m, "XLA_FFI_API_MAJOR", XLA_FFI_API_MAJOR);
    PyModule_AddIntConstant(m, "XLA_FFI_API_MINOR", XLA_FFI_API_MINOR);
    return m;
}
