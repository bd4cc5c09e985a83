/*
 * The module part of the kernel ABI probe (see probe.c). NetBSD declares
 * struct modinfo only under _KERNEL, whose headers need the whole kernel
 * tree, so gen.sh copies that one declaration out of the installed
 * <sys/module.h> into "modinfo_decl.h", which this file includes.
 */
#include <sys/param.h>
#include <sys/module.h>
#include "modinfo_decl.h"

#define offsetof(type, member) __builtin_offsetof(type, member)

#define V(name, expr) const long long probe_##name = (long long)(expr);

V(modinfo_size, sizeof(struct modinfo))
V(modinfo_mi_version, offsetof(struct modinfo, mi_version))
V(modinfo_mi_class, offsetof(struct modinfo, mi_class))
V(modinfo_mi_modcmd, offsetof(struct modinfo, mi_modcmd))
V(modinfo_mi_name, offsetof(struct modinfo, mi_name))
V(modinfo_mi_required, offsetof(struct modinfo, mi_required))
V(module_class_secmodel, MODULE_CLASS_SECMODEL)
V(module_cmd_init, MODULE_CMD_INIT)
V(module_cmd_fini, MODULE_CMD_FINI)
V(module_cmd_autounload, MODULE_CMD_AUTOUNLOAD)
V(maxmodname, MAXMODNAME)
