// userfaultfd ABI: constants and structures that older <linux/userfaultfd.h> (Debian 12's 6.1 headers)
// lack. Every value matches include/uapi/linux/userfaultfd.h of Linux >= 6.8; sizes are checked below.
#pragma once

#include <cstddef>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_EXACT_ADDRESS
#define UFFD_FEATURE_EXACT_ADDRESS (1 << 11)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
    struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
    __u64 mode;
    __s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
    __u64 dst;
    __u64 src;
    __u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
    __u64 mode;
    __s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC 0xAA
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif

#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

namespace compactor::abi {

static_assert(sizeof(uffdio_move) == 40, "struct uffdio_move is 40 bytes");
static_assert(offsetof(uffdio_move, move) == 32, "uffdio_move.move at offset 32");
static_assert(sizeof(uffdio_poison) == 32, "struct uffdio_poison is 32 bytes");
static_assert(sizeof(uffdio_copy) == 40, "struct uffdio_copy is 40 bytes");
static_assert(sizeof(uffd_msg) == 32, "struct uffd_msg is 32 bytes");
static_assert(UFFDIO_MOVE == 0xc028aa05UL, "UFFDIO_MOVE ioctl number");
static_assert(UFFDIO_POISON == 0xc020aa08UL, "UFFDIO_POISON ioctl number");
static_assert(UFFD_FEATURE_MOVE == (1 << 16), "UFFD_FEATURE_MOVE bit");
static_assert(UFFD_FEATURE_POISON == (1 << 14), "UFFD_FEATURE_POISON bit");
static_assert(USERFAULTFD_IOC_NEW == 0xaa00, "USERFAULTFD_IOC_NEW ioctl number");

}  // namespace compactor::abi
