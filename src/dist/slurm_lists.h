// Slurm's compressed list forms, as found in SLURM_JOB_NODELIST and SLURM_TASKS_PER_NODE.
// Both throw std::invalid_argument describing the problem; callers add the variable's name.
#pragma once
#include <string>
#include <vector>

namespace gfwa::dist {

// "gpu[01-03,07],login1" -> gpu01 gpu02 gpu03 gpu07 login1. Several bracket groups in one name
// expand as a product ("r[1-2]n[1-2]" -> r1n1 r1n2 r2n1 r2n2); a range keeps its lower bound's width.
std::vector<std::string> expand_slurm_nodelist(const std::string& list);

// "4(x2),3" -> 4 4 3: tasks on each node of the step, in node order.
std::vector<int> expand_slurm_tasks_per_node(const std::string& list);

}  // namespace gfwa::dist
