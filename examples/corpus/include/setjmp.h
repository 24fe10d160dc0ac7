/* WASI has no setjmp/longjmp (no stack unwinding without the exception
 * handling proposal). For the corpus, a longjmp (Lua raising an error,
 * SQLite never) ends the program: the bench's scripts raise none. */
#ifndef PROCTOR_SETJMP_H
#define PROCTOR_SETJMP_H
#include <stdlib.h>
typedef int jmp_buf[1];
#define setjmp(b) ((void)(b), 0)
#define _setjmp(b) setjmp(b)
#define longjmp(b, v) ((void)(b), (void)(v), abort())
#define _longjmp(b, v) longjmp(b, v)
#endif
