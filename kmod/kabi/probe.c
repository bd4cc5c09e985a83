/*
 * Kernel ABI probe for secmodel_cell: every structure offset and constant
 * the module reads from the installed NetBSD headers (compiled with
 * -D_KMEMUSER, which exposes struct proc, lwp and friends). Compiled to
 * assembly only, never run; kmod/kabi/gen.sh reads the `probe_<name>`
 * values. probe_module.c and probe_kauth.c hold what needs other headers.
 * The row names are the table's (kmod/kabi/*.tab).
 */
#include <sys/param.h>
#include <sys/types.h>
#include <sys/errno.h>
#include <sys/socket.h>
#include <sys/socketvar.h>
#include <sys/syslog.h>
#include <sys/proc.h>
#include <sys/lwp.h>
#include <sys/filedesc.h>
#include <sys/vnode.h>
#include <sys/sysctl.h>
#include <sys/callout.h>
#include <sys/rwlock.h>
#include <sys/mutex.h>
#include <sys/kmem.h>
#include <sys/resource.h>
#include <uvm/uvm_extern.h>

#define V(name, expr) const long long probe_##name = (long long)(expr);

V(netbsd_version, __NetBSD_Version__)
V(proc_p_list, offsetof(struct proc, p_list))
V(proc_p_cred, offsetof(struct proc, p_cred))
V(proc_p_cwdi, offsetof(struct proc, p_cwdi))
V(proc_p_vmspace, offsetof(struct proc, p_vmspace))
V(proc_p_flag, offsetof(struct proc, p_flag))
V(proc_p_stat, offsetof(struct proc, p_stat))
V(proc_p_pid, offsetof(struct proc, p_pid))
V(proc_p_uticks, offsetof(struct proc, p_uticks))
V(proc_p_sticks, offsetof(struct proc, p_sticks))
V(proc_p_iticks, offsetof(struct proc, p_iticks))
V(pk_marker, PK_MARKER)
V(szomb, SZOMB)
V(lwp_l_proc, offsetof(struct lwp, l_proc))
V(lwp_l_cred, offsetof(struct lwp, l_cred))
V(cwdinfo_cwdi_rdir, offsetof(struct cwdinfo, cwdi_rdir))
V(cwdinfo_cwdi_lock, offsetof(struct cwdinfo, cwdi_lock))
V(rw_reader, RW_READER)
V(vmspace_vm_map_size, offsetof(struct vmspace, vm_map) + offsetof(struct vm_map, size))
V(vnode_v_type, offsetof(struct vnode, v_type))
V(vdir, VDIR)
V(socket_so_options, offsetof(struct socket, so_options))
V(so_reuseport, SO_REUSEPORT)
V(rlimit_rlim_max, offsetof(struct rlimit, rlim_max))
V(rlimit_as, RLIMIT_AS)
V(sysctlnode_size, sizeof(struct sysctlnode))
V(sysctlnode_flags, offsetof(struct sysctlnode, sysctl_flags))
V(sysctlnode_num, offsetof(struct sysctlnode, sysctl_num))
V(sysctlnode_name, offsetof(struct sysctlnode, sysctl_name))
V(ctl_security, CTL_SECURITY)
V(ctl_eol, CTL_EOL)
V(ctl_create, CTL_CREATE)
V(ctltype_node, CTLTYPE_NODE)
V(ctltype_int, CTLTYPE_INT)
V(ctltype_string, CTLTYPE_STRING)
V(ctltype_struct, CTLTYPE_STRUCT)
V(ctlflag_readonly, CTLFLAG_READONLY)
V(ctlflag_readwrite, CTLFLAG_READWRITE)
V(ctlflag_permanent, CTLFLAG_PERMANENT)
V(ctlflag_immediate, CTLFLAG_IMMEDIATE)
V(callout_size, sizeof(callout_t))
V(callout_mpsafe, CALLOUT_MPSAFE)
V(mutex_default, MUTEX_DEFAULT)
V(km_nosleep, KM_NOSLEEP)
V(log_info, LOG_INFO)
V(log_notice, LOG_NOTICE)
V(af_inet, AF_INET)
V(af_inet6, AF_INET6)
V(pf_route, PF_ROUTE)
V(pf_oroute, PF_OROUTE)
V(eperm, EPERM)
V(enoent, ENOENT)
V(enomem, ENOMEM)
V(efault, EFAULT)
V(ebusy, EBUSY)
V(eexist, EEXIST)
V(enotdir, ENOTDIR)
V(einval, EINVAL)
V(enotty, ENOTTY)
V(eoverflow, EOVERFLOW)
