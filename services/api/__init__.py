"""The northbound gRPC API (`tandem.v1.Tandem`, protos/tandem/v1/api.proto): OSS/BSS order,
ask what-if questions, release and read workloads and the topology. See docs/API.md."""
