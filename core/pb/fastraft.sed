s/proto\.Marshal(m\.Message)/marshalRaftMessage(m.Message)/
s/proto\.Size(m\.Message)/sizeRaftMessage(m.Message)/
s/proto\.Unmarshal(dAtA\[iNdEx:postIndex\], m\.Message)/mergeRaftMessage(dAtA[iNdEx:postIndex], m.Message)/
s/proto\.Marshal(m\.Entries\[iNdEx\])/marshalRaftEntry(m.Entries[iNdEx])/
s/l = proto\.Size(e)$/l = sizeRaftEntry(e)/
s/proto\.Unmarshal(dAtA\[iNdEx:postIndex\], m\.Entries\[len(m\.Entries)-1\])/unmarshalRaftEntry(dAtA[iNdEx:postIndex], m.Entries[len(m.Entries)-1])/
s/proto\.Unmarshal(dAtA\[iNdEx:postIndex\], m\.\(HardState\|ConfState\))/(proto.UnmarshalOptions{Merge: true}).Unmarshal(dAtA[iNdEx:postIndex], m.\1)/
s/proto\.Marshal(m\.HardState)/marshalHardState(m.HardState)/
s/l = proto\.Size(m\.HardState)$/l = sizeHardState(m.HardState)/
