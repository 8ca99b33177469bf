/* TEST ONLY, never shipped: a stand-in for Windows' bcryptprimitives.dll.
 * Rust's standard library imports ProcessPrng from it (Windows 10 and later
 * have it); Wine 8 does not, and any program using bill.dll then fails to
 * start. `make test-windows` puts this beside its test programs. */
#include <windows.h>

/* advapi32's SystemFunction036, better known as RtlGenRandom. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
