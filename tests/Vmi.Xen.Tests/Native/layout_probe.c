/* Prints the sizes, member offsets and constants of the Xen public headers installed in /usr/include,
 * for StructLayoutTests to compare with the C# mirrors in src/Xen/Native/Structs.cs.
 * Lines: "S <struct> <size>", "F <struct> <member path> <offset> <size>",
 *        "A <struct> <member path> <offset>" (an array: offset only), "C <constant> <value>". */
#include <stdio.h>
#include <stddef.h>
#include <xenctrl.h>
#include <xen/vm_event.h>
#include <xen/hvm/save.h>
#include <xen/hvm/params.h>
#include <xenstore.h>

#define S(T, name) printf("S %s %zu\n", name, sizeof(T))
#define F(T, name, m) printf("F %s %s %zu %zu\n", name, #m, offsetof(T, m), sizeof(((T *)0)->m))
#define A(T, name, m) printf("A %s %s %zu\n", name, #m, offsetof(T, m))
#define C(c) printf("C %s %llu\n", #c, (unsigned long long)(c))

int main(void)
{
    S(vm_event_request_t, "vm_event_st");
    F(vm_event_request_t, "vm_event_st", version);
    F(vm_event_request_t, "vm_event_st", flags);
    F(vm_event_request_t, "vm_event_st", reason);
    F(vm_event_request_t, "vm_event_st", vcpu_id);
    F(vm_event_request_t, "vm_event_st", altp2m_idx);
    F(vm_event_request_t, "vm_event_st", u);
    F(vm_event_request_t, "vm_event_st", u.mem_paging.gfn);
    F(vm_event_request_t, "vm_event_st", u.mem_paging.p2mt);
    F(vm_event_request_t, "vm_event_st", u.mem_paging.flags);
    F(vm_event_request_t, "vm_event_st", u.mem_access.gfn);
    F(vm_event_request_t, "vm_event_st", u.mem_access.offset);
    F(vm_event_request_t, "vm_event_st", u.mem_access.gla);
    F(vm_event_request_t, "vm_event_st", u.mem_access.flags);
    F(vm_event_request_t, "vm_event_st", u.write_ctrlreg.index);
    F(vm_event_request_t, "vm_event_st", u.write_ctrlreg.new_value);
    F(vm_event_request_t, "vm_event_st", u.write_ctrlreg.old_value);
    F(vm_event_request_t, "vm_event_st", u.mov_to_msr.msr);
    F(vm_event_request_t, "vm_event_st", u.mov_to_msr.new_value);
    F(vm_event_request_t, "vm_event_st", u.mov_to_msr.old_value);
    F(vm_event_request_t, "vm_event_st", u.desc_access.arch.vmx.instr_info);
    F(vm_event_request_t, "vm_event_st", u.desc_access.arch.vmx.exit_qualification);
    F(vm_event_request_t, "vm_event_st", u.desc_access.descriptor);
    F(vm_event_request_t, "vm_event_st", u.desc_access.is_write);
    F(vm_event_request_t, "vm_event_st", u.singlestep.gfn);
    F(vm_event_request_t, "vm_event_st", u.fast_singlestep.p2midx);
    F(vm_event_request_t, "vm_event_st", u.software_breakpoint.gfn);
    F(vm_event_request_t, "vm_event_st", u.software_breakpoint.insn_length);
    F(vm_event_request_t, "vm_event_st", u.debug_exception.gfn);
    F(vm_event_request_t, "vm_event_st", u.debug_exception.pending_dbg);
    F(vm_event_request_t, "vm_event_st", u.debug_exception.insn_length);
    F(vm_event_request_t, "vm_event_st", u.debug_exception.type);
    F(vm_event_request_t, "vm_event_st", u.cpuid.insn_length);
    F(vm_event_request_t, "vm_event_st", u.cpuid.leaf);
    F(vm_event_request_t, "vm_event_st", u.cpuid.subleaf);
    F(vm_event_request_t, "vm_event_st", u.vmexit.arch.vmx.reason);
    F(vm_event_request_t, "vm_event_st", u.vmexit.arch.vmx.qualification);
    F(vm_event_request_t, "vm_event_st", u.interrupt.x86.vector);
    F(vm_event_request_t, "vm_event_st", u.interrupt.x86.type);
    F(vm_event_request_t, "vm_event_st", u.interrupt.x86.error_code);
    F(vm_event_request_t, "vm_event_st", u.interrupt.x86.cr2);
    F(vm_event_request_t, "vm_event_st", data);
    F(vm_event_request_t, "vm_event_st", data.regs.x86);
    F(vm_event_request_t, "vm_event_st", data.regs.x86.rip);
    F(vm_event_request_t, "vm_event_st", data.regs.x86.cr3);
    F(vm_event_request_t, "vm_event_st", data.emul.insn);
    F(vm_event_request_t, "vm_event_st", data.emul.insn.data);
    /* the response is the same type */
    S(vm_event_response_t, "vm_event_st");

    S(struct vm_event_regs_x86, "vm_event_regs_x86");
#define R(m) F(struct vm_event_regs_x86, "vm_event_regs_x86", m)
    R(rax); R(rcx); R(rdx); R(rbx); R(rsp); R(rbp); R(rsi); R(rdi);
    R(r8); R(r9); R(r10); R(r11); R(r12); R(r13); R(r14); R(r15);
    R(rflags); R(dr6); R(dr7); R(rip); R(cr0); R(cr2); R(cr3); R(cr4);
    R(sysenter_cs); R(sysenter_esp); R(sysenter_eip); R(msr_efer); R(msr_star); R(msr_lstar);
    R(gdtr_base); R(npt_base); R(vmtrace_pos);
    R(cs_base); R(ss_base); R(ds_base); R(es_base); R(fs_base); R(gs_base);
    R(cs); R(ss); R(ds); R(es); R(fs); R(gs);
    R(shadow_gs); R(gdtr_limit); R(cs_sel); R(ss_sel); R(ds_sel); R(es_sel); R(fs_sel); R(gs_sel);
    S(struct vm_event_x86_selector_reg, "vm_event_x86_selector_reg");

    /* The shared ring page: the header is everything before ring[]. */
    printf("S vm_event_sring_header %zu\n", offsetof(vm_event_sring_t, ring));
    F(vm_event_sring_t, "vm_event_sring_header", req_prod);
    F(vm_event_sring_t, "vm_event_sring_header", req_event);
    F(vm_event_sring_t, "vm_event_sring_header", rsp_prod);
    F(vm_event_sring_t, "vm_event_sring_header", rsp_event);
    F(vm_event_sring_t, "vm_event_sring_header", pvt);
    printf("C RING_SIZE_4096 %d\n", (int)__RING_SIZE((vm_event_sring_t *)0, 4096));

    S(struct hvm_save_descriptor, "hvm_save_descriptor");
    F(struct hvm_save_descriptor, "hvm_save_descriptor", typecode);
    F(struct hvm_save_descriptor, "hvm_save_descriptor", instance);
    F(struct hvm_save_descriptor, "hvm_save_descriptor", length);

    S(struct hvm_hw_cpu, "hvm_hw_cpu");
#define H(m) F(struct hvm_hw_cpu, "hvm_hw_cpu", m)
    A(struct hvm_hw_cpu, "hvm_hw_cpu", fpu_regs);
    H(rax); H(rbx); H(rcx); H(rdx); H(rbp); H(rsi); H(rdi); H(rsp);
    H(r8); H(r9); H(r10); H(r11); H(r12); H(r13); H(r14); H(r15);
    H(rip); H(rflags); H(cr0); H(cr2); H(cr3); H(cr4);
    H(dr0); H(dr1); H(dr2); H(dr3); H(dr6); H(dr7);
    H(cs_sel); H(ds_sel); H(es_sel); H(fs_sel); H(gs_sel); H(ss_sel); H(tr_sel); H(ldtr_sel);
    H(cs_limit); H(ds_limit); H(es_limit); H(fs_limit); H(gs_limit); H(ss_limit); H(tr_limit); H(ldtr_limit);
    H(idtr_limit); H(gdtr_limit);
    H(cs_base); H(ds_base); H(es_base); H(fs_base); H(gs_base); H(ss_base); H(tr_base); H(ldtr_base);
    H(idtr_base); H(gdtr_base);
    H(cs_arbytes); H(ds_arbytes); H(es_arbytes); H(fs_arbytes); H(gs_arbytes); H(ss_arbytes); H(tr_arbytes); H(ldtr_arbytes);
    H(sysenter_cs); H(sysenter_esp); H(sysenter_eip); H(shadow_gs);
    H(msr_flags); H(msr_lstar); H(msr_star); H(msr_cstar); H(msr_syscall_mask); H(msr_efer); H(msr_tsc_aux);
    H(tsc); H(pending_event); H(error_code); H(flags); H(pad0);

    S(struct hvm_hw_mtrr, "hvm_hw_mtrr");
    F(struct hvm_hw_mtrr, "hvm_hw_mtrr", msr_pat_cr);
    F(struct hvm_hw_mtrr, "hvm_hw_mtrr", msr_mtrr_cap);
    F(struct hvm_hw_mtrr, "hvm_hw_mtrr", msr_mtrr_def_type);
    F(struct hvm_hw_cpu_xsave, "hvm_hw_cpu_xsave_head", xfeature_mask);
    F(struct hvm_hw_cpu_xsave, "hvm_hw_cpu_xsave_head", xcr0);
    F(struct hvm_hw_cpu_xsave, "hvm_hw_cpu_xsave_head", xcr0_accum);
    printf("S hvm_hw_cpu_xsave_head %zu\n", offsetof(struct hvm_hw_cpu_xsave, save_area));

    S(xc_vcpuinfo_t, "xen_domctl_getvcpuinfo");
    F(xc_vcpuinfo_t, "xen_domctl_getvcpuinfo", vcpu);
    F(xc_vcpuinfo_t, "xen_domctl_getvcpuinfo", online);
    F(xc_vcpuinfo_t, "xen_domctl_getvcpuinfo", blocked);
    F(xc_vcpuinfo_t, "xen_domctl_getvcpuinfo", running);
    F(xc_vcpuinfo_t, "xen_domctl_getvcpuinfo", cpu_time);
    F(xc_vcpuinfo_t, "xen_domctl_getvcpuinfo", cpu);
    S(struct xen_domctl, "xen_domctl_monitor_op");
    F(struct xen_domctl, "xen_domctl_monitor_op", cmd);
    F(struct xen_domctl, "xen_domctl_monitor_op", interface_version);
    F(struct xen_domctl, "xen_domctl_monitor_op", domain);
    printf("C xen_domctl.u.monitor_op.op %zu\n", offsetof(struct xen_domctl, u.monitor_op.op));
    printf("C xen_domctl.u.monitor_op.event %zu\n", offsetof(struct xen_domctl, u.monitor_op.event));
    C(XEN_DOMCTL_monitor_op); C(XEN_DOMCTL_MONITOR_OP_CONTROL_REGISTERS);
    S(xen_domctl_getdomaininfo_t, "xen_domctl_getdomaininfo");
#define D(m) F(xen_domctl_getdomaininfo_t, "xen_domctl_getdomaininfo", m)
    D(domain); D(flags); D(tot_pages); D(max_pages); D(outstanding_pages); D(shr_pages); D(paged_pages);
    D(shared_info_frame); D(cpu_time); D(nr_online_vcpus); D(max_vcpu_id); D(ssidref);
    A(xen_domctl_getdomaininfo_t, "xen_domctl_getdomaininfo", handle);
    D(cpupool); D(gpaddr_bits); D(arch_config); D(arch_config.emulation_flags); D(arch_config.misc_flags);

    C(VM_EVENT_INTERFACE_VERSION);
    C(VM_EVENT_FLAG_VCPU_PAUSED); C(VM_EVENT_FLAG_EMULATE); C(VM_EVENT_FLAG_TOGGLE_SINGLESTEP); C(VM_EVENT_FLAG_DENY);
    C(VM_EVENT_FLAG_ALTERNATE_P2M); C(VM_EVENT_FLAG_SET_REGISTERS); C(VM_EVENT_FLAG_FAST_SINGLESTEP);
    C(VM_EVENT_FLAG_SET_EMUL_INSN_DATA);
    C(VM_EVENT_REASON_MEM_ACCESS); C(VM_EVENT_REASON_WRITE_CTRLREG); C(VM_EVENT_REASON_MOV_TO_MSR);
    C(VM_EVENT_REASON_SOFTWARE_BREAKPOINT); C(VM_EVENT_REASON_SINGLESTEP); C(VM_EVENT_REASON_GUEST_REQUEST);
    C(VM_EVENT_REASON_DEBUG_EXCEPTION); C(VM_EVENT_REASON_CPUID); C(VM_EVENT_REASON_DESCRIPTOR_ACCESS);
    C(VM_EVENT_X86_CR0); C(VM_EVENT_X86_CR3); C(VM_EVENT_X86_CR4); C(VM_EVENT_X86_XCR0);
    C(MEM_ACCESS_R); C(MEM_ACCESS_W); C(MEM_ACCESS_X); C(MEM_ACCESS_GLA_VALID);
    C(XENMEM_access_n); C(XENMEM_access_rwx); C(XENMEM_access_rx2rw); C(XENMEM_access_n2rwx);
    C(HVM_PARAM_ALTP2M); C(XEN_DOMCTL_DEBUG_OP_SINGLE_STEP_OFF); C(XEN_DOMCTL_DEBUG_OP_SINGLE_STEP_ON);
    C(XENVER_version); C(XBT_NULL);
    C(XEN_DOMINF_dying); C(XEN_DOMINF_hvm_guest); C(XEN_DOMINF_shutdown); C(XEN_DOMINF_paused);
    C(XEN_DOMINF_blocked); C(XEN_DOMINF_running); C(XEN_X86_EMU_PIC);
    C(HVM_SAVE_CODE(CPU)); C(HVM_SAVE_CODE(MTRR)); C(CPU_XSAVE_CODE);
    return 0;
}
