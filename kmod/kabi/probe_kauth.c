/*
 * The kauth(9) part of the kernel ABI probe (see probe.c): every action
 * and request number secmodel_cell maps to its own stable enums, and the
 * width of kauth_action_t. <sys/kauth.h> is not installed under
 * /usr/include, so gen.sh compiles this only when it is given the kernel
 * source tree (the release's syssrc set, usually /usr/src/sys).
 */
#include <sys/param.h>
#include <sys/types.h>
#include <sys/queue.h>	/* older secmodel.h uses LIST_ENTRY without it */
#include <sys/kauth.h>

#define V(name, expr) const long long probe_##name = (long long)(expr);

V(kauth_action_size, sizeof(kauth_action_t))
V(kauth_result_allow, KAUTH_RESULT_ALLOW)
V(kauth_result_deny, KAUTH_RESULT_DENY)
V(kauth_result_defer, KAUTH_RESULT_DEFER)

V(kauth_process_cansee, KAUTH_PROCESS_CANSEE)
V(kauth_process_corename, KAUTH_PROCESS_CORENAME)
V(kauth_process_fork, KAUTH_PROCESS_FORK)
V(kauth_process_kevent_filter, KAUTH_PROCESS_KEVENT_FILTER)
V(kauth_process_ktrace, KAUTH_PROCESS_KTRACE)
V(kauth_process_nice, KAUTH_PROCESS_NICE)
V(kauth_process_procfs, KAUTH_PROCESS_PROCFS)
V(kauth_process_ptrace, KAUTH_PROCESS_PTRACE)
V(kauth_process_rlimit, KAUTH_PROCESS_RLIMIT)
V(kauth_process_scheduler_getaffinity, KAUTH_PROCESS_SCHEDULER_GETAFFINITY)
V(kauth_process_scheduler_setaffinity, KAUTH_PROCESS_SCHEDULER_SETAFFINITY)
V(kauth_process_scheduler_getparam, KAUTH_PROCESS_SCHEDULER_GETPARAM)
V(kauth_process_scheduler_setparam, KAUTH_PROCESS_SCHEDULER_SETPARAM)
V(kauth_process_setid, KAUTH_PROCESS_SETID)
V(kauth_process_signal, KAUTH_PROCESS_SIGNAL)
V(kauth_process_stopflag, KAUTH_PROCESS_STOPFLAG)
V(kauth_req_process_rlimit_set, KAUTH_REQ_PROCESS_RLIMIT_SET)

V(kauth_cred_init, KAUTH_CRED_INIT)
V(kauth_cred_fork, KAUTH_CRED_FORK)
V(kauth_cred_copy, KAUTH_CRED_COPY)
V(kauth_cred_free, KAUTH_CRED_FREE)
V(kauth_cred_chroot, KAUTH_CRED_CHROOT)

V(kauth_system_accounting, KAUTH_SYSTEM_ACCOUNTING)
V(kauth_system_chroot, KAUTH_SYSTEM_CHROOT)
V(kauth_system_cpu, KAUTH_SYSTEM_CPU)
V(kauth_system_devmapper, KAUTH_SYSTEM_DEVMAPPER)
V(kauth_system_filehandle, KAUTH_SYSTEM_FILEHANDLE)
V(kauth_system_intr, KAUTH_SYSTEM_INTR)
V(kauth_system_kernaddr, KAUTH_SYSTEM_KERNADDR)
V(kauth_system_mknod, KAUTH_SYSTEM_MKNOD)
V(kauth_system_module, KAUTH_SYSTEM_MODULE)
V(kauth_system_mount, KAUTH_SYSTEM_MOUNT)
V(kauth_system_mqueue, KAUTH_SYSTEM_MQUEUE)
V(kauth_system_pset, KAUTH_SYSTEM_PSET)
V(kauth_system_reboot, KAUTH_SYSTEM_REBOOT)
V(kauth_system_semaphore, KAUTH_SYSTEM_SEMAPHORE)
V(kauth_system_swapctl, KAUTH_SYSTEM_SWAPCTL)
V(kauth_system_sysctl, KAUTH_SYSTEM_SYSCTL)
V(kauth_system_sysvipc, KAUTH_SYSTEM_SYSVIPC)
V(kauth_system_time, KAUTH_SYSTEM_TIME)
V(kauth_req_system_mount_get, KAUTH_REQ_SYSTEM_MOUNT_GET)
V(kauth_req_system_mount_new, KAUTH_REQ_SYSTEM_MOUNT_NEW)
V(kauth_req_system_mount_unmount, KAUTH_REQ_SYSTEM_MOUNT_UNMOUNT)
V(kauth_req_system_mount_update, KAUTH_REQ_SYSTEM_MOUNT_UPDATE)
V(kauth_req_system_mount_umap, KAUTH_REQ_SYSTEM_MOUNT_UMAP)
V(kauth_req_system_mount_device, KAUTH_REQ_SYSTEM_MOUNT_DEVICE)
V(kauth_req_system_sysctl_add, KAUTH_REQ_SYSTEM_SYSCTL_ADD)
V(kauth_req_system_sysctl_delete, KAUTH_REQ_SYSTEM_SYSCTL_DELETE)
V(kauth_req_system_sysctl_desc, KAUTH_REQ_SYSTEM_SYSCTL_DESC)
V(kauth_req_system_sysctl_modify, KAUTH_REQ_SYSTEM_SYSCTL_MODIFY)
V(kauth_req_system_sysctl_prvt, KAUTH_REQ_SYSTEM_SYSCTL_PRVT)

V(kauth_network_bind, KAUTH_NETWORK_BIND)
V(kauth_network_socket, KAUTH_NETWORK_SOCKET)
V(kauth_req_network_bind_port, KAUTH_REQ_NETWORK_BIND_PORT)
V(kauth_req_network_bind_privport, KAUTH_REQ_NETWORK_BIND_PRIVPORT)
V(kauth_req_network_socket_open, KAUTH_REQ_NETWORK_SOCKET_OPEN)
V(kauth_req_network_socket_rawsock, KAUTH_REQ_NETWORK_SOCKET_RAWSOCK)
V(kauth_req_network_socket_cansee, KAUTH_REQ_NETWORK_SOCKET_CANSEE)
V(kauth_req_network_socket_drop, KAUTH_REQ_NETWORK_SOCKET_DROP)
V(kauth_req_network_socket_setpriv, KAUTH_REQ_NETWORK_SOCKET_SETPRIV)

V(kauth_device_tty_sti, KAUTH_DEVICE_TTY_STI)
