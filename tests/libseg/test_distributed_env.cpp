// seg::world_from_environment: torchrun's variables, and Open MPI's, MPICH's and Slurm's
// mapped to them.
#include <seg/distributed.h>
#include <seg/error.h>

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace {

seg::WorldInfo world_of(const std::map<std::string, std::string>& env) {
  return seg::world_from_environment([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST(WorldFromEnvironment, NoVariablesMeansOneProcess) {
  const auto w = world_of({});
  EXPECT_EQ(w.rank, 0);
  EXPECT_EQ(w.world_size, 1);
  EXPECT_FALSE(w.distributed());
  EXPECT_EQ(w.launcher, "");
}

TEST(WorldFromEnvironment, Torchrun) {
  const auto w = world_of({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                           {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29400"}});
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.world_size, 4);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_world_size, 2);
  EXPECT_EQ(w.master_addr, "10.0.0.7");
  EXPECT_EQ(w.master_port, 29400);
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_TRUE(w.distributed());
}

TEST(WorldFromEnvironment, OpenMpiMpichAndSlurmAreMapped) {
  auto w = world_of({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                     {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}, {"MASTER_ADDR", "head"}});
  EXPECT_EQ(w.launcher, "mpirun");
  EXPECT_EQ(w.rank, 1);
  EXPECT_EQ(w.world_size, 2);
  EXPECT_EQ(w.local_rank, 0);
  EXPECT_EQ(w.master_addr, "head");
  EXPECT_EQ(w.master_port, 29500);

  w = world_of({{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}});
  EXPECT_EQ(w.launcher, "mpirun");
  EXPECT_EQ(w.rank, 2);
  EXPECT_EQ(w.local_rank, 2);  // no local rank given: all on one machine
  EXPECT_EQ(w.local_world_size, 3);

  // Slurm writes tasks per node as "2(x3)" on uniform allocations.
  w = world_of({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}, {"SLURM_LOCALID", "1"}, {"SLURM_NTASKS_PER_NODE", "2(x3)"}});
  EXPECT_EQ(w.launcher, "srun");
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_world_size, 2);

  // torchrun's own variables win over the allocation's it may run inside.
  w = world_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_EQ(w.world_size, 2);
}

TEST(WorldFromEnvironment, MalformedValuesAreUsageErrors) {
  EXPECT_THROW(world_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), seg::UsageError);
  EXPECT_THROW(world_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), seg::UsageError);
  EXPECT_THROW(world_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}}), seg::UsageError);
  EXPECT_THROW(world_of({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}), seg::UsageError);
  EXPECT_THROW(world_of({{"MASTER_PORT", "70000"}}), seg::UsageError);
  EXPECT_THROW(world_of({{"MASTER_PORT", "29500x"}}), seg::UsageError);
}
