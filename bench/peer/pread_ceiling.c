/* The ceiling of a pread-based image read on this machine (docs/performance.md, "Why 60 % is out of reach").
 * Reads the same 64 MiB of a guest image as the peer harness's bulk tests (physical 0x3e00000 on) with pread into a
 * reused buffer in several chunk sizes, then pread windows + 4 KiB memcpys out of them (what the engine's read-ahead
 * does), pread + fstat per 4 KiB (what it did before), and C memcpy of 4 KiB chunks from anonymous memory; thread CPU
 * time, three rounds.
 *   gcc -O2 -o pread_ceiling bench/peer/pread_ceiling.c && nice -n 10 ./pread_ceiling <guest.raw>
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int c,char**v){int fd=open(v[1],O_RDONLY);long base=0x3e00000,N=64<<20;
 static char buf[1<<20] __attribute__((aligned(64))); static char dst[4096] __attribute__((aligned(64)));
 char*anon=malloc(N);memset(anon,1,N);
 size_t sizes[]={4096,65536,131072,262144,1<<20};
 for(int rep=0;rep<3;rep++){
 for(int s=0;s<5;s++){size_t ch=sizes[s];double t=now();
  for(long o=0;o<N;o+=ch){pread(fd,buf,ch,base+o);}
  double d=now()-t;printf("pread %7zu: %.2f GB/s\n",ch,N/d/1e9);}
 for(int s=1;s<4;s++){size_t ch=sizes[s];double t=now();
  for(long o=0;o<N;o+=ch){pread(fd,buf,ch,base+o);for(size_t k=0;k<ch;k+=4096)memcpy(dst,buf+k,4096);}
  double d=now()-t;printf("pread %7zu + 4K memcpy: %.2f GB/s\n",ch,N/d/1e9);}
 {double t=now();struct stat st;for(long o=0;o<N;o+=4096){pread(fd,dst,4096,base+o);fstat(fd,&st);}double d=now()-t;printf("pread4K+fstat: %.2f GB/s\n",N/d/1e9);}
 {double t=now();for(long o=0;o<N;o+=4096)memcpy(dst,anon+o,4096);double d=now()-t;printf("memcpy anon 4K: %.2f GB/s\n",N/d/1e9);}
 }
}
